# Stand-in for digits/pretrained_model/tasks/torch_upload.py.
from __future__ import absolute_import

from .upload_pretrained import UploadPretrainedModelTask


class TorchUploadTask(UploadPretrainedModelTask):

    def name(self):
        return 'Upload Pretrained Torch Model'

    def get_model_def_path(self):
        return self.job_dir + "/original.lua"

    def get_weights_path(self):
        return self.job_dir + "/_Model.t7"

    def __setstate__(self, state):
        super(TorchUploadTask, self).__setstate__(state)
