# Stand-in for digits/pretrained_model/job.py (DIGITS 5.x/6.x releases).
from __future__ import absolute_import

import os

from ..job import Job


class PretrainedModelJob(Job):
    """
    A Job that uploads a pretrained model (new-style).
    """

    def get_weights_path(self):
        return self.tasks[0].get_weights_path()

    def get_model_def_path(self):
        return self.tasks[0].get_model_def_path()

    def get_python_layer_path(self):
        tmp_dir = os.path.dirname(self.tasks[0].get_model_def_path())
        python_layer_file_name = 'digits_python_layers.py'
        if os.path.exists(os.path.join(tmp_dir, python_layer_file_name)):
            return os.path.join(tmp_dir, python_layer_file_name)
        elif os.path.exists(os.path.join(tmp_dir, python_layer_file_name + 'c')):
            return os.path.join(tmp_dir, python_layer_file_name + 'c')
        return None

    def has_labels_file(self):
        return os.path.isfile(self.tasks[0].get_labels_path())

    def is_persistent(self):
        return True

    def job_type(self):
        return "Pretrained Model"

    def __getstate__(self):
        # Exactly these seven keys; a missing one raises KeyError (which
        # DIGITS's Job.save() swallows, so the job is never re-persisted).
        fields_to_save = ['_id', '_name', 'username', 'tasks', 'status_history', 'framework', 'image_info']
        full_state = super(PretrainedModelJob, self).__getstate__()
        state_to_save = {}
        for field in fields_to_save:
            state_to_save[field] = full_state[field]
        return state_to_save

    def __setstate__(self, state):
        super(PretrainedModelJob, self).__setstate__(state)
