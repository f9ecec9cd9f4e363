"""The accelerator kit: send a corpus to a remote accelerator machine, train there, bring the model back.

The remote machine is available for a fixed device time (about 15 minutes in all, start and idle
waits included). It takes at most 64 MiB of files per call (the repository's working tree counts),
keeps its files only while it stays warm between calls, runs a command for at most 10 minutes and
returns at most 8 files of 16 MiB (64 MiB in all) per call. So everything crosses in verified pieces:

- `archive`: one deterministic tar, xz-compressed, cut into parts with a sha256 each, joined and
  extracted byte-exactly on the other side (nothing is moved into place before every hash checks);
- `plan`: how many parts and calls the corpus needs, how many minutes of training remain in the
  device budget, how many calls bring the model back, and the exact `run` call for each step;
- `device`: what runs on the machine (keep a part, assemble and train, send the model back);
- `collect`: here, the returned parts are verified and joined into a model dir, then shipped and
  evaluated; a bring-back that is cut off leaves every shipped model as it was;
- `rehearse`: the whole plan on this machine, every limit enforced, for a dry run before the device time is spent.

`python -m training.accelerator` is the command line.
"""
