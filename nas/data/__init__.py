"""Tasks and data, offline: classification (built-in MNIST digits, CIFAR-10, Fashion-MNIST,
ImageNet-layout folders streamed from disk), denoising and ×2 super-resolution (patches of
built-in photos; CBSD68 / Set5 / Set14), and their metrics. Nothing downloads; heavy libraries
(torch, PIL, scikit-image, mlxtend) are imported only when data is loaded. User guide:
``docs/data.md``.
"""

from nas.core.errors import DataError
from nas.data.imagefolder import ImageFolderData, load_imagefolder
from nas.data.metrics import psnr, task_metric, top1
from nas.data.sources import TASKS, DataSpec, parse_data_spec
from nas.data.tasks import TaskData, load_task_data

__all__ = [
    "TASKS",
    "DataError",
    "DataSpec",
    "ImageFolderData",
    "TaskData",
    "load_imagefolder",
    "load_task_data",
    "parse_data_spec",
    "psnr",
    "task_metric",
    "top1",
]
