"""codeparrot-js-lora: only the adapter is saved, --merge writes weights equal to base+adapter, the server serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from fixtures_runner import SMALL, read_json, write_github_parquet

from training.finetune import main

REPO = Path(__file__).resolve().parents[2]


def test_lora_adapter_only_merge_matches_and_server_serves_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    data = write_github_parquet(tmp_path / "gh")
    out = tmp_path / "OUT"
    rc = main(["--recipe", "codeparrot-js-lora", "--output-dir", str(out), *SMALL,
               "--set", f"data.files={data}/*.parquet", "--set", f"model.name_or_path={tiny_model_dir}",
               "--set", "train.max_steps=4", "--set", "train.learning_rate=1e-2", "--merge"])
    assert rc == 0

    # Only the adapter: no full weights, no base config in OUT.
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert keys and all("lora_" in k for k in keys)
        assert any(f.get_tensor(k).abs().sum() > 0 for k in keys if "lora_B" in k)  # trained, not the zero init
    adapter_cfg = read_json(out / "adapter_config.json")
    assert adapter_cfg["fan_in_fan_out"] is True
    assert set(adapter_cfg["target_modules"]) == {"c_attn", "c_proj", "c_fc"}
    assert {"train_loss", "eval_loss", "perplexity", "tokens_seen"} <= set(read_json(out / "metrics.json"))

    # --merge: a plain model dir whose outputs equal base + adapter.
    merged_dir = out / "merged"
    assert (merged_dir / "config.json").is_file() and (merged_dir / "model.safetensors").is_file()
    ids = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 11]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, use_safetensors=True).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, out).eval()
        adapter_logits = adapted(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, use_safetensors=True).eval()
        merged_logits = merged(ids).logits
    assert not torch.allclose(base_logits, adapter_logits, atol=1e-4)  # the adapter changes the model
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)

    # The server loads base + adapter as is.
    src = tmp_path / "a.js"
    src.write_text("function add(a, b) {\n  return a + b;\n}\nconst x = ")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    served = subprocess.run(
        [sys.executable, "-m", "server", "complete", f"{src}:4:10", "--model", str(tiny_model_dir), "--adapter", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
