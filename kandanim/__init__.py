"""kandanim: YAML screenplays → camera-animated videos with Kandinsky 2.2."""

__version__ = "0.1.0"
