"""Workspace retrieval: the user's own files as a suffix-array index, and what the engine asks of it.

`segment.Segment` is one immutable suffix array over token ids; `index.WorkspaceIndex` keeps the
workspace's files (disk + open documents) in a base segment plus a small delta segment rebuilt on
each edit; `files.scan_workspace` lists what may be indexed; `mixing.NgramGuide` turns longest-match
("∞-gram") next-token counts into a decode-time interpolation with the model. This package never
imports the engine: the engine takes a plain callable.
"""
