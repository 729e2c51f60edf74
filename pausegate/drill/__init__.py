"""Drills seen from outside: the prober that times a drill as readers and the fleet see it."""
