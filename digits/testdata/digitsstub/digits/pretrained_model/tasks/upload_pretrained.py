# Stand-in for digits/pretrained_model/tasks/upload_pretrained.py.
from __future__ import absolute_import

import os

from ...task import Task


class UploadPretrainedModelTask(Task):
    """
    A task for uploading pretrained models (new-style).
    """

    def __init__(self, **kwargs):
        self.weights_path = kwargs.pop('weights_path', None)
        self.model_def_path = kwargs.pop('model_def_path', None)
        self.image_info = kwargs.pop('image_info', None)
        self.labels_path = kwargs.pop('labels_path', None)
        self.framework = kwargs.pop('framework', None)
        self.gpu = None
        super(UploadPretrainedModelTask, self).__init__(**kwargs)

    def name(self):
        return 'Upload Pretrained Model'

    def __setstate__(self, state):
        super(UploadPretrainedModelTask, self).__setstate__(state)

    def get_labels_path(self):
        return os.path.join(self.job_dir, "labels.txt")

    def get_model_def_path(self):
        raise NotImplementedError('Please implement me')

    def get_weights_path(self):
        raise NotImplementedError('Please implement me')
