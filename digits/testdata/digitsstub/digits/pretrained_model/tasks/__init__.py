# Stand-in for digits/pretrained_model/tasks/__init__.py (DIGITS 6.x).
from __future__ import absolute_import

from .upload_pretrained import UploadPretrainedModelTask  # noqa: F401
from .caffe_upload import CaffeUploadTask  # noqa: F401
from .torch_upload import TorchUploadTask  # noqa: F401
from .tensorflow_upload import TensorflowUploadTask  # noqa: F401
