"""Latency subsystem: convert block specs to TFLite, time them on a device, fill LUTs."""
