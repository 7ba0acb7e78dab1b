"""Run reports: collapse alerts and the plots of `python -m learner.report`."""
