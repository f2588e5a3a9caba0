"""POSIX sh scripts that run on Android devices (mksh/toybox); shipped as package data."""
