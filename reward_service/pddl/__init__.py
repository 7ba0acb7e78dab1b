"""PDDL3 parser, immutable typed model, grounding, state simulator and trajectory-constraint monitors."""
