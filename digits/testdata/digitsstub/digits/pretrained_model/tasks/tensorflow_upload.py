# Stand-in for digits/pretrained_model/tasks/tensorflow_upload.py (6.x only).
from __future__ import absolute_import

import os

from .upload_pretrained import UploadPretrainedModelTask


class TensorflowUploadTask(UploadPretrainedModelTask):

    def name(self):
        return 'Upload Pretrained Tensorflow Model'

    def get_model_def_path(self):
        return os.path.join(self.job_dir, "network.py")

    def get_weights_path(self):
        # A checkpoint prefix: snapshot.ckpt.{data-00000-of-00001,index,meta}.
        return os.path.join(self.job_dir, "snapshot.ckpt")

    def __setstate__(self, state):
        super(TensorflowUploadTask, self).__setstate__(state)
