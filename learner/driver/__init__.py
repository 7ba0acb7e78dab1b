"""The driver of a run: setup and teardown, the step loop, the none guard, the step record; the only part of
`learner` that imports `actors`."""
