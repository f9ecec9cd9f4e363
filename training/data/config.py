"""Data and tokenizer configuration (plain TOML-able dataclasses).

`training.config.RunConfig` embeds `DataConfig` as `data` and `TokenizerConfig` as `tokenizer`,
so every field here is reachable as `--set data.<field>=...` / `--set tokenizer.<field>=...`.
Every field is a plain TOML type (str, int, float, bool, list[str]) with a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCES = ("github-code", "npm", "local", "eli5")

# Defaults used when `files` / `hub_dataset` are left empty.
GITHUB_CODE_HUB_DATASET = "codeparrot/github-code"
GITHUB_CODE_HUB_FILES = "hf://datasets/codeparrot/github-code/data/train-*-of-01126.parquet"
# eli5_category ships json.gz data files under data/ in its hub repo (its loading script no longer
# runs in datasets ≥ 3); override `data.files` if the hub layout changes.
ELI5_HUB_DATASET = "rexarski/eli5_category"
ELI5_HUB_FILES = "hf://datasets/rexarski/eli5_category/data/train.json.gz"


@dataclass
class DataConfig:
    """Where the text comes from, what is kept, and how it is packed into blocks."""

    source: str = "npm"  # github-code | npm | local | eli5: which reader produces the records
    files: str = ""  # glob of local parquet/json files; "" = the hub default for the source
    dir: str = ""  # npm/local: dir of unpacked packages (one folder each, with package.json)
    tokens: str = ""  # a corpus packed by `python -m training.data.tokens pack` (OUT stem): read instead of dir/files
    packages_file: str = ""  # npm: `name@version` lines fetched with `npm pack` when dir is empty
    npm_cache_dir: str = ""  # npm: where fetched packages are unpacked; "" = ~/.cache/codeparrot-lsp/npm
    hub_dataset: str = ""  # hub repo id for github-code/eli5; "" = the source's default
    extensions: list[str] = field(default_factory=lambda: [".js", ".mjs", ".cjs", ".jsx"])  # JavaScript only
    licenses: list[str] = field(default_factory=lambda: ["mit", "isc", "apache-2.0"])  # permissive, attribution-only
    max_files: int = 0  # cap on candidate files (past path/license checks) read from the source (0 = all); bounds a stream
    max_records: int = 0  # cap on records kept after filters (0 = all); quick experiments
    eval_fraction: float = 0.05  # share of tokens held out, whole packages/repos at a time (no near-copy leak)
    block_size: int = 512  # tokens per packed training block (≤ model context)
    fim_rate: float = 0.5  # share of documents turned into FIM examples (SantaCoder used 0.5)
    fim_spm_rate: float = 0.5  # share of FIM examples in SPM order (the server prompts in SPM)
    dedup: bool = True  # drop exact (whitespace-normalised) and near duplicates
    near_dedup_threshold: float = 0.85  # MinHash Jaccard above which a file is a near copy (codeparrot)
    near_dedup_num_perm: int = 128  # MinHash permutations: precision vs. speed
    max_file_bytes: int = 1_000_000  # larger source files are data or bundles, not hand-written code
    max_line_length: int = 1000  # codeparrot: longer lines mean minified/generated text
    max_mean_line_length: int = 100  # codeparrot: a high mean line length means minified/data
    min_alphanum_fraction: float = 0.25  # codeparrot: mostly symbols/whitespace is not code
    autogen_lines: int = 5  # codeparrot: look for "generated" markers in the first N lines
    min_chars_per_token: float = 1.5  # codeparrot: poor compression means hex/base64/data blobs
    seed: int = 42  # FIM choices, eval split and shuffling are all derived from this
    streaming: bool = False  # github-code/eli5 hub: stream shards instead of downloading them (local files always stream)
    text_column: str = ""  # parquet/json text column; "" = source default (content|code, answers.text)
    eli5_include_question: bool = False  # eli5: prepend title+selftext to the joined answers


@dataclass
class TokenizerConfig:
    """Which tokenizer to use, or how to train one for scratch recipes."""

    name_or_path: str = ""  # "" = train a byte-level BPE on the run's data (scratch recipes)
    vocab_size: int = 16384  # small vocab keeps the embedding of a tiny CPU model small
    min_frequency: int = 2  # merges seen once are noise
