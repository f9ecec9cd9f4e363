"""Training data pipeline: sources → license/decontam/quality filters → dedup → packing (+FIM).

Contract with `training.config` / `training.finetune` (see docs/internals.md):

- `training.data.config`: `DataConfig`, `TokenizerConfig` (embedded in `RunConfig` as `data`
  and `tokenizer`).
- `training.data.build`: `build_lm_datasets(data_cfg, tokenizer, *, fim, output_dir,
  accelerator_main_process=True) -> LMData(train, eval, manifest)` and
  `iter_texts(data_cfg) -> Iterator[Record]` (records after every filter).
- `training.data.records.Record`: one kept file / document with its provenance.

Heavy imports (datasets, datasketch, transformers) happen inside the modules that need them, so
importing this package stays cheap.
"""

from training.data.config import DataConfig, TokenizerConfig
from training.data.records import DataError, Record

__all__ = ["DataConfig", "DataError", "Record", "TokenizerConfig"]
