"""Small helpers shared by several concerns: atomic writes, timing, the software/hardware environment,
the random streams of a cell, rank agreement."""
