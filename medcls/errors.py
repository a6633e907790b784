"""The errors medcls raises for bad input; the command line prints them as one line, without a traceback."""


class MedclsError(Exception):
    """Bad input the user can fix; the message names the culprit and what to do."""


class DataError(MedclsError, ValueError):
    """A data set folder or file does not match what its reader expects."""


class CheckpointError(MedclsError):
    """A checkpoint is missing, or does not fit the model or the tasks it is used with."""


class TuningError(MedclsError, ValueError):
    """A learning-rate search or range test asked for something impossible, or its folder holds another search."""
