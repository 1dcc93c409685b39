"""Small stand-alone tools around kandanim's outputs (run with `python -m kandanim.tools.NAME`)."""
