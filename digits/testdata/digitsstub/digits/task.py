# Stand-in for digits/task.py (DIGITS 5.x/6.x).
from __future__ import absolute_import

import os

from .status import Status, StatusCls

# NOTE: Increment this everytime the pickled version changes
PICKLE_VERSION = 1


class Task(StatusCls):
    """
    Base class of DIGITS tasks (new-style: Task -> StatusCls -> object).
    """

    def __init__(self, job_dir, parents=None):
        super(Task, self).__init__()
        self.pickver_task = PICKLE_VERSION
        self.job_dir = job_dir
        self.job_id = os.path.basename(job_dir)
        self.parents = parents
        self.progress = 0
        self.exception = None
        self.traceback = None
        self.aborted = None
        self.set_logger()

    def __getstate__(self):
        d = self.__dict__.copy()
        for k in ('aborted', 'logger', 'p', '_stub_state_keys'):
            if k in d:
                del d[k]
        return d

    def __setstate__(self, state):
        # Test hook, not in DIGITS: the keys the pickle itself held.
        keys = sorted(state.keys())
        self.__dict__ = state
        # DIGITS: gevent.event.Event()
        self.aborted = None
        self.set_logger()
        self._stub_state_keys = keys

    def set_logger(self):
        # DIGITS: JobIdLoggerAdapter(logging.getLogger('digits.webapp'),
        # {'job_id': self.job_id}); AttributeError without job_id.
        self.logger = 'job %s' % self.job_id

    def name(self):
        raise NotImplementedError

    def path(self, filename):
        if not filename:
            return None
        if os.path.isabs(filename):
            return filename
        return os.path.join(self.job_dir, filename)

    def abort(self):
        if self.status.is_running():
            self.status = Status.ABORT
