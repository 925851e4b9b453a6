"""InputError: a problem with what the user gave (a data file, a setting), reported as one message, no traceback."""


class InputError(Exception):
    """Mixed into the errors whose message says all a user needs: which file or setting, what is wrong, what to do.

    Entry points print the message alone (mri.utils.run.task_wrapper); a traceback from deep inside helps nobody.
    """
