"""`python -m training.export_gguf MODEL_DIR OUT.gguf [--dtype f32|f16]`: a GPT-2 dir as GGUF for llama.cpp.

The conversion is `server.engines.gguf_export` (the llama.cpp engine converts model dirs with it
on first use); this is its command line. Bad inputs are one `error: ...` line on stderr with exit
status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.engines.gguf_export import ExportError, export

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.export_gguf", description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path, help="local Hugging Face GPT-2 dir (config.json, model.safetensors)")
    p.add_argument("out", type=Path, help="the .gguf file to write")
    p.add_argument("--dtype", choices=("f32", "f16"), default="f32",
                   help="weight type of 2-D tensors (default f32: identical logits to transformers)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        export(args.model_dir, args.out, args.dtype)
    except (ExportError, OSError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
