# Stand-in for digits/status.py (DIGITS 5.x/6.x).
from __future__ import absolute_import

import time


class Status():
    """
    The state of a Job or Task.

    Declared exactly like DIGITS, "class Status():", which is an old-style
    class in Python 2: it has no __new__, so a pickle must build it with
    INST/OBJ (or REDUCE calling Status(val)), never NEWOBJ.
    """

    INIT = 'I'
    WAIT = 'W'
    RUN = 'R'
    DONE = 'D'
    ABORT = 'A'
    ERROR = 'E'

    def __init__(self, val):
        self.set_dict(val)

    def __str__(self):
        return self.val

    # Pickling: the state is the one-character value.

    def __getstate__(self):
        return self.val

    def __setstate__(self, state):
        self.set_dict(state)

    # Operators

    def __eq__(self, other):
        if type(other) == type(self):
            return self.val == other.val
        elif type(other) == str:
            return self.val == other
        else:
            return False

    def __ne__(self, other):
        if type(other) == type(self):
            return self.val != other.val
        elif type(other) == str:
            return self.val != other
        else:
            return True

    def set_dict(self, val):
        self.val = val
        if val == self.INIT:
            self.name = 'Initialized'
            self.css = 'warning'
        elif val == self.WAIT:
            self.name = 'Waiting'
            self.css = 'warning'
        elif val == self.RUN:
            self.name = 'Running'
            self.css = 'info'
        elif val == self.DONE:
            self.name = 'Done'
            self.css = 'success'
        elif val == self.ABORT:
            self.name = 'Aborted'
            self.css = 'warning'
        elif val == self.ERROR:
            self.name = 'Error'
            self.css = 'danger'
        else:
            self.name = '?'
            self.css = 'default'

    def is_running(self):
        return self.val in (self.INIT, self.WAIT, self.RUN)


class StatusCls(object):
    """
    A history of Status updates (new-style, like DIGITS).
    """

    def __init__(self):
        self.progress = 0
        self.status_history = []
        self.status = Status.INIT

    @property
    def status(self):
        # DIGITS returns the *string* 'I' for an empty history, which has no
        # .name or .is_running(): histories must not be empty.
        if len(self.status_history) > 0:
            return self.status_history[-1][0]
        else:
            return Status.INIT

    @status.setter
    def status(self, value):
        # As DIGITS, without the socketio callbacks.
        if isinstance(value, str):
            value = Status(value)
        assert isinstance(value, Status)
        if self.status_history and value == self.status_history[-1][0]:
            return
        self.status_history.append((value, time.time()))
        if value == Status.DONE:
            self.progress = 1.0
