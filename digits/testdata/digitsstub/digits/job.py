# Stand-in for digits/job.py (DIGITS 5.x/6.x).
from __future__ import absolute_import

import os
import pickle
import shutil

from .status import Status, StatusCls


class Job(StatusCls):
    """
    Base class of DIGITS jobs (new-style: Job -> StatusCls -> object).
    """
    SAVE_FILE = 'status.pickle'

    @classmethod
    def load(cls, jobs_dir, job_id):
        """
        As DIGITS's Job.load(job_id), with jobs_dir passed in instead of
        config_value('jobs_dir'): unpickle jobs_dir/job_id/status.pickle
        and reset job._dir and every task.job_dir to that directory. The
        pickled job._id and task.job_id are kept as they are.
        """
        job_dir = os.path.join(jobs_dir, job_id)
        filename = os.path.join(job_dir, cls.SAVE_FILE)
        with open(filename, 'rb') as savefile:
            job = pickle.load(savefile)
            job._dir = job_dir
            for task in job.tasks:
                task.job_dir = job_dir
            return job

    def __getstate__(self):
        d = self.__dict__.copy()
        # Not linked to state (DIGITS), and the stubs' test hook.
        for k in ('_dir', 'event', '_stub_state_keys'):
            if k in d:
                del d[k]
        return d

    def __setstate__(self, state):
        # Test hook, not in DIGITS: the keys the pickle itself held.
        keys = sorted(state.keys())
        if 'username' not in state:
            state['username'] = None
        if 'group' not in state:
            state['group'] = ''
        self.__dict__ = state
        self.persistent = True
        self._stub_state_keys = keys

    def id(self):
        return self._id

    def dir(self):
        return self._dir

    def name(self):
        return self._name

    def notes(self):
        if hasattr(self, '_notes'):
            return self._notes
        return None

    def is_persistent(self):
        return self.persistent

    def get_progress(self):
        if len(self.tasks) == 0:
            return 0.0
        progress = 0.0
        for task in self.tasks:
            progress += task.progress
        return progress / len(self.tasks)

    def runtime_of_tasks(self):
        starts = []
        stops = []
        for task in self.tasks:
            for start_status, start_timestamp in task.status_history:
                if start_status == Status.RUN:
                    starts.append(start_timestamp)
                    for stop_status, stop_timestamp in task.status_history:
                        if stop_status in [Status.DONE, Status.ABORT, Status.ERROR]:
                            stops.append(stop_timestamp)
                    break
        if starts and stops:
            return max(stops) - min(starts)
        return 0

    def save(self):
        """
        As DIGITS's Job.save(): pickle.dump with the default protocol to
        status.pickle.tmp in job.dir(), then move it over status.pickle.
        DIGITS logs and swallows errors here; the stand-in raises them.
        """
        tmp = os.path.join(self.dir(), self.SAVE_FILE + '.tmp')
        with open(tmp, 'wb') as f:
            pickle.dump(self, f)
        shutil.move(tmp, os.path.join(self.dir(), self.SAVE_FILE))
        return True

    def save_bytes(self):
        """
        What Job.save() would write to status.pickle (pickle.dump with the
        default protocol), returned instead of written.
        """
        return pickle.dumps(self)
