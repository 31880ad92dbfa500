# Stand-in for digits/pretrained_model/__init__.py.
from __future__ import absolute_import

from .job import PretrainedModelJob  # noqa: F401
