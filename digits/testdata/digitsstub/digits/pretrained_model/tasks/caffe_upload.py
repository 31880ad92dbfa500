# Stand-in for digits/pretrained_model/tasks/caffe_upload.py.
from __future__ import absolute_import

from .upload_pretrained import UploadPretrainedModelTask


class CaffeUploadTask(UploadPretrainedModelTask):

    def name(self):
        return 'Upload Pretrained Caffe Model'

    def get_model_def_path(self):
        return self.job_dir + "/original.prototxt"

    def get_weights_path(self):
        return self.job_dir + "/model.caffemodel"

    def __setstate__(self, state):
        super(CaffeUploadTask, self).__setstate__(state)
