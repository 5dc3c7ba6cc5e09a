"""
Sample hooks, used by some of the tests in test_taskspec.py
"""


def on_render():
    pass


def on_finish():
    pass


def on_failure():
    pass
