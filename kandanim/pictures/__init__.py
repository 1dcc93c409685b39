"""Pictures of the plan (SPEC §12): camera-path plots, the effect gallery.

`plot` draws a plan with matplotlib (Agg, no display, no torch); `gallery` renders a
looping clip of every effect with the preview engine and an `index.html` around them;
`effect_plans` builds the one-scene plans both use. Nothing here prints.
"""
