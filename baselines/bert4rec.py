"""BERT4Rec through RecBole 1.2.1: trained on the training users' sequences, re-ranking fixed candidates.

BERT4Rec (Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional
Encoder Representations from Transformer", CIKM 2019) is trained with RecBole's
standard implementation: the cloze (masked-item) objective with the full-softmax
CE loss (``train_neg_sample_args: None``), leave-last-out validation on NDCG@10
over all items, early stopping, and the best validation epoch kept.

Training data (option ``train_on``, :func:`baselines.scoring.resolve_train_source`)
are the training users' interactions: by default KuaiRec's organic log (the big
matrix of every user outside the validation and test splits) where the prepared
dataset stores one, else the observable interactions (ML-1M: all ratings);
``train_on=observed`` trains KuaiRec on the 10% sparse view as SPEC section 5 says
(README, "Deviations", gives both results). Each user's interactions are ordered
by timestamp (ties by stored row order) and written once per data fingerprint and
source as a RecBole atomic ``.inter`` file under ``<data>/cache/recbole/atomic/``
with a dataset name that is not a RecBole built-in; its ``timestamp`` column is
the position in the user's sequence, so RecBole's ordering is exact and never
meets a missing time.

History (option ``history``): ``positive`` feeds the model only the history items
with ``engagement >= positive_engagement`` of the prepared dataset (KuaiRec:
complete plays, watch ratio >= 1: every small-matrix video was shown to every
user, so a view alone says nothing about taste); ``all`` feeds every item;
``auto`` is ``positive`` where the dataset defines positive engagement, else ``all``.

Scoring. RecBole's ``predict`` appends the mask token and drops the first column,
losing the oldest history item, and ranks all items rather than a given list. The
ranker runs the model itself: the user's last ``L - 1`` (kept) history items known
to the model, then the mask token (alone when no item is kept: the learned prior);
``h`` is the encoder output at the mask position and

    s(c) = <h, E[c]> + b[c]

for each candidate ``c`` (``E`` the item embeddings, ``b`` the output bias): the
logit the CE loss trains. Candidates unseen in training have no embedding and
score ``-inf``; ties are broken by item ID.

All RecBole use goes through :func:`baselines.recbole_compat.recbole_session`.
The checkpoint directory holds ``model.pt`` (a plain state dict),
``bert4rec.json`` (item-ID mapping, architecture, provenance) and ``recbole/``
(RecBole's resumable best-epoch checkpoint).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baselines.recbole_compat import check_dataset_name, recbole_api, recbole_session
from baselines.scoring import (
    has_histories,
    positive_history,
    rank_by_score,
    resolve_train_source,
    training_log,
)
from flexbench.errors import FlexBenchError
from flexbench.options import parse_options
from flexbench.paths import cache_dir, checkpoint_dir
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.trainers import TrainRequest
from flexbench.types import Instance, NeedSpec, Ranking, Split

META_FILE, MODEL_FILE, FORMAT_VERSION = "bert4rec.json", "model.pt", 1
HISTORY_MODES = ("auto", "all", "positive")
# Keys of RecBole's Config that BERT4Rec.__init__ reads; saved so the model can be rebuilt without RecBole's data.
_MODEL_KEYS = ("USER_ID_FIELD", "ITEM_ID_FIELD", "LIST_SUFFIX", "ITEM_LIST_LENGTH_FIELD", "NEG_PREFIX",
               "MAX_ITEM_LIST_LENGTH", "n_layers", "n_heads", "hidden_size", "inner_size",
               "hidden_dropout_prob", "attn_dropout_prob", "hidden_act", "layer_norm_eps", "mask_ratio",
               "MASK_ITEM_SEQ", "POS_ITEMS", "NEG_ITEMS", "MASK_INDEX", "loss_type", "initializer_range")


@dataclass(frozen=True, slots=True)
class BERT4RecConfig:
    """Training settings (``flexbench train bert4rec --set key=value``).

    Architecture defaults are RecBole's for BERT4Rec; ``epochs`` and the batch
    size are lowered from RecBole's 300 / 2048 to fit CPU training, and
    ``max_seq_length`` from 50 to 20: instances show at most ``history_len``
    (10) items, and attention cost grows with the square of the length.
    ``num_threads`` is torch's intra-op thread count during training (``None``
    keeps torch's default). On the shared 2-core machine 1 thread trained 3
    ML-1M-sample epochs in 24.8 s and 2 threads in 253 s (oversubscription).
    ``train_on`` (``auto``, ``observed``, ``organic``) and ``history`` (``auto``,
    ``all``, ``positive``) choose the training log and the history items fed to
    the model (module docstring).
    """

    epochs: int = 30
    train_batch_size: int = 256
    learning_rate: float = 1e-3
    max_seq_length: int = 20
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    dropout: float = 0.2
    mask_ratio: float = 0.2
    stopping_step: int = 5
    eval_batch_size: int = 1024
    num_threads: int | None = 1
    train_on: str = "auto"
    history: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "train_batch_size", "hidden_size", "n_layers", "n_heads", "inner_size",
                     "stopping_step", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise FlexBenchError(f"bert4rec option {name} must be >= 1, got {getattr(self, name)}")
        if self.max_seq_length < 2:
            raise FlexBenchError(f"bert4rec option max_seq_length must be >= 2 (history + mask), "
                                 f"got {self.max_seq_length}")
        if self.hidden_size % self.n_heads:
            raise FlexBenchError(f"bert4rec option hidden_size ({self.hidden_size}) must be a multiple "
                                 f"of n_heads ({self.n_heads})")
        if not 0 <= self.dropout < 1 or not 0 < self.mask_ratio < 1 or self.learning_rate <= 0:
            raise FlexBenchError("bert4rec options need 0 <= dropout < 1, 0 < mask_ratio < 1, learning_rate > 0")
        if self.num_threads is not None and self.num_threads < 1:
            raise FlexBenchError(f"bert4rec option num_threads must be >= 1, got {self.num_threads}")
        if self.history not in HISTORY_MODES:
            raise FlexBenchError(f"bert4rec option history must be one of {', '.join(HISTORY_MODES)}, "
                                 f"got {self.history!r}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BERT4RecConfig:
        """Build from ``--set``/``--config`` options, converted by field type; unknown keys raise."""
        return cls(**parse_options(cls, options, what="bert4rec option"))

    def run_key(self) -> dict[str, Any]:
        """Settings that define the trained model (thread count excluded)."""
        return {k: v for k, v in asdict(self).items() if k != "num_threads"}

    def recbole_config(self, *, dataset: str, data_path: Path, checkpoint_dir: Path, seed: int) -> dict[str, Any]:
        """The RecBole ``config_dict``; every path absolute, nothing left to RecBole's defaults that writes."""
        return {
            "data_path": str(data_path), "checkpoint_dir": str(checkpoint_dir), "dataset": dataset,
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "MAX_ITEM_LIST_LENGTH": self.max_seq_length,
            "loss_type": "CE", "train_neg_sample_args": None,
            "eval_args": {"split": {"LS": "valid_only"}, "order": "TO", "mode": "full", "group_by": "user"},
            "metrics": ["NDCG", "Recall"], "topk": [10], "valid_metric": "NDCG@10",
            "epochs": self.epochs, "train_batch_size": self.train_batch_size,
            "eval_batch_size": self.eval_batch_size, "learning_rate": self.learning_rate,
            "stopping_step": self.stopping_step,
            "hidden_size": self.hidden_size, "n_layers": self.n_layers, "n_heads": self.n_heads,
            "inner_size": self.inner_size, "hidden_dropout_prob": self.dropout,
            "attn_dropout_prob": self.dropout, "mask_ratio": self.mask_ratio,
            "seed": seed, "reproducibility": True, "use_gpu": False, "show_progress": False,
            "save_dataset": False, "save_dataloaders": False, "log_wandb": False, "worker": 0,
        }


def default_checkpoint_dir(dataset: str) -> Path:
    """``<data>/checkpoints/bert4rec/<dataset>``."""
    return checkpoint_dir("bert4rec", dataset)


def history_threshold(dataset: PreparedDataset, mode: str) -> float | None:
    """Minimum engagement of a history item fed to the model (``None``: every item); module docstring."""
    if mode == "positive" and dataset.positive_engagement is None:
        raise FlexBenchError(f"bert4rec option history=positive: dataset {dataset.name!r} defines no positive "
                             f"engagement (only KuaiRec does: complete plays)")
    return None if mode == "all" else dataset.positive_engagement


def write_atomic_files(dataset: PreparedDataset, root: Path, source: str = "observed") -> str:
    """Write the training users' time-ordered ``source`` log as ``<root>/<name>/<name>.inter``; return ``name``."""
    name = f"flexbench_{dataset.name.replace('-', '_')}_{source}_{dataset.fingerprint[:12]}"
    check_dataset_name(name)
    path = root / name / f"{name}.inter"
    if path.exists():
        return name
    inter = training_log(dataset, source)
    if inter.empty:
        raise FlexBenchError(f"dataset {dataset.name!r} has no training interactions; BERT4Rec needs user "
                             f"histories (esci has queries only)")
    inter = inter.assign(row=np.arange(len(inter))).sort_values(["user_id", "timestamp", "row"])
    inter = inter.assign(position=inter.groupby("user_id").cumcount().astype(float))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    inter[["user_id", "item_id", "position"]].to_csv(
        tmp, sep="\t", index=False, header=["user_id:token", "item_id:token", "timestamp:float"])
    tmp.replace(path)
    return name


def train_command(request: TrainRequest) -> Path:
    """``flexbench train bert4rec --dataset D``: train, save to ``request.out_dir``, print train/score times."""
    from rich.console import Console

    from flexbench.catalog import open_dataset

    console = Console(soft_wrap=True)
    cfg = BERT4RecConfig.from_options(request.options)
    dataset = open_dataset(request.dataset)
    out = Path(request.out_dir).resolve()
    key = {"dataset": dataset.name, "fingerprint": dataset.fingerprint, "seed": request.seed, **cfg.run_key(),
           "train_on": resolve_train_source(dataset, cfg.train_on),
           "history_min_engagement": history_threshold(dataset, cfg.history)}
    meta = _read_meta(out)
    if request.resume and meta is not None and meta["run_key"] == key:
        console.print(f"bert4rec checkpoint in {out} is up to date (trained in {meta['train_seconds']:.1f} s); "
                      f"pass --no-resume to retrain")
    else:
        meta = _train(dataset, cfg, key, out, seed=request.seed, resume=request.resume, console=console)
        console.print(f"bert4rec training time: {meta['train_seconds']:.1f} s "
                      f"({meta['epochs_run']} epochs on the {key['train_on']} log, "
                      f"best valid NDCG@10 {meta['best_valid_ndcg10']:.4f})")
    instances = dataset.instances(Split.TEST)
    start = time.perf_counter()
    BERT4RecModel.load(out).rank(instances)
    elapsed = time.perf_counter() - start
    console.print(f"bert4rec scoring time: {elapsed:.2f} s for {len(instances)} test instances "
                  f"({1000 * elapsed / max(len(instances), 1):.2f} ms/instance)")
    return out


def _train(dataset: PreparedDataset, cfg: BERT4RecConfig, key: dict[str, Any], out: Path, *, seed: int,
           resume: bool, console: Any) -> dict[str, Any]:
    from rich.progress import Progress

    recbole_root = cache_dir().resolve() / "recbole"
    name = write_atomic_files(dataset, recbole_root / "atomic", key["train_on"])
    state_dir = out / "recbole"
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file, state_key = state_dir / "BERT4Rec-best.pth", state_dir / "run_key.json"
    resumable = resume and state_file.exists() and state_key.exists() and json.loads(state_key.read_text()) == key
    if not resumable:
        state_file.unlink(missing_ok=True)
        state_key.write_text(json.dumps(key, sort_keys=True))
    with recbole_session(recbole_root / "run", num_threads=cfg.num_threads) as rb:
        config = rb.Config(model="BERT4Rec", dataset=name, config_dict=cfg.recbole_config(
            dataset=name, data_path=recbole_root / "atomic", checkpoint_dir=state_dir, seed=seed))
        rb.init_seed(seed, True)
        train_data, valid_data, _ = rb.data_preparation(config, rb.create_dataset(config))
        model = rb.BERT4Rec(config, train_data.dataset)
        trainer = rb.Trainer(config, model)
        trainer.saved_model_file = str(state_file)
        if resumable:
            trainer.resume_checkpoint(state_file)
            console.print(f"resuming bert4rec from epoch {trainer.start_epoch} ({state_file})")
        start = time.perf_counter()
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task("bert4rec", total=cfg.epochs, completed=trainer.start_epoch)

            def report(epoch: int, valid_score: float) -> None:
                progress.update(task, completed=epoch + 1, description=(
                    f"bert4rec epoch {epoch + 1}/{cfg.epochs} loss {trainer.train_loss_dict[epoch]:.3f} "
                    f"valid NDCG@10 {valid_score:.4f}"))

            trainer.fit(train_data, valid_data, saved=True, verbose=False, callback_fn=report)
        train_seconds = time.perf_counter() - start
        epochs_run = max(trainer.train_loss_dict, default=trainer.start_epoch - 1) + 1
        # RecBole's own pickle, written by this run: full unpickling is needed for its config object.
        best = torch.load(state_file, map_location="cpu", weights_only=False)
        model_config = {k: config[k] for k in _MODEL_KEYS}
        item_ids = [str(t) for t in train_data.dataset.field2id_token["item_id"]]
    meta = {"format": FORMAT_VERSION, "run_key": key, "recbole_dataset": name, "model_config": model_config,
            "item_ids": item_ids, "train_seconds": train_seconds, "epochs_run": epochs_run,
            "best_epoch": int(best["epoch"]), "best_valid_ndcg10": float(best["best_valid_score"])}
    _save(out, best["state_dict"], meta)
    return meta


def _save(out: Path, state_dict: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``model.pt`` then ``bert4rec.json`` (its presence marks a complete checkpoint)."""
    (out / META_FILE).unlink(missing_ok=True)
    torch.save(dict(state_dict), out / f"{MODEL_FILE}.tmp")
    (out / f"{MODEL_FILE}.tmp").replace(out / MODEL_FILE)
    (out / f"{META_FILE}.tmp").write_text(json.dumps(meta))
    (out / f"{META_FILE}.tmp").replace(out / META_FILE)


def _read_meta(path: Path) -> dict[str, Any] | None:
    file = path / META_FILE
    if not file.exists() or not (path / MODEL_FILE).exists():
        return None
    meta = json.loads(file.read_text())
    return meta if meta.get("format") == FORMAT_VERSION else None


class _ItemCount:
    """The one thing ``SequentialRecommender.__init__`` asks of a RecBole dataset: the item count."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def num(self, field: str) -> int:
        return self.n_items


class BERT4RecModel:
    """A trained BERT4Rec with its item-ID mapping; scores candidate lists from histories (module docstring)."""

    def __init__(self, model: torch.nn.Module, item_ids: Sequence[str], meta: Mapping[str, Any]) -> None:
        self.model = model.eval()
        self.meta = meta
        self.index = {item: i for i, item in enumerate(item_ids) if i > 0}  # 0 is RecBole's [PAD]
        self.max_len = int(model.max_seq_length)
        self.mask_token = int(model.mask_token)
        self.min_engagement: float | None = meta["run_key"].get("history_min_engagement")  # absent: all

    @classmethod
    def load(cls, path: Path) -> BERT4RecModel:
        """Rebuild the model from ``path`` (written by :func:`train_command`); RecBole's data are not needed."""
        meta = _read_meta(Path(path))
        if meta is None:
            raise FileNotFoundError(f"no bert4rec checkpoint in {path}")
        config = {**meta["model_config"], "device": torch.device("cpu")}
        model = recbole_api().BERT4Rec(config, _ItemCount(len(meta["item_ids"])))
        model.load_state_dict(torch.load(Path(path) / MODEL_FILE, map_location="cpu", weights_only=True))
        return cls(model, meta["item_ids"], meta)

    @torch.no_grad()
    def scores(self, histories: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """``s(c)`` for each candidate list, given each history (oldest first); unknown items -> ``-inf``."""
        n, width = len(histories), max((len(c) for c in candidates), default=0)
        seq = torch.zeros((n, self.max_len), dtype=torch.long)
        cand = torch.zeros((n, width), dtype=torch.long)
        mask_at = torch.zeros(n, dtype=torch.long)
        for row, (hist, cands) in enumerate(zip(histories, candidates, strict=True)):
            known = [self.index[i] for i in hist if i in self.index][-(self.max_len - 1):]
            seq[row, : len(known)] = torch.tensor(known, dtype=torch.long)
            seq[row, len(known)] = self.mask_token
            mask_at[row] = len(known)
            cand[row, : len(cands)] = torch.tensor([self.index.get(c, 0) for c in cands], dtype=torch.long)
        hidden = self.model.forward(seq)[torch.arange(n), mask_at]  # [n, H]
        logits = torch.einsum("nh,nkh->nk", hidden, self.model.item_embedding(cand)) + self.model.output_bias[cand]
        logits = logits.masked_fill(cand == 0, float("-inf")).numpy()
        return [logits[row, : len(c)].astype(np.float64) for row, c in enumerate(candidates)]

    def rank(self, instances: Sequence[Instance], batch_size: int = 256) -> list[Ranking]:
        """Rank each instance's candidates by ``s(c)`` given its kept history, ties by item ID, in input order."""
        rankings: list[Ranking] = []
        for start in range(0, len(instances), batch_size):
            batch = instances[start:start + batch_size]
            scored = self.scores([positive_history(x.history, self.min_engagement) for x in batch],
                                 [x.candidate_ids for x in batch])
            rankings += [Ranking(x.instance_id, rank_by_score(x.candidate_ids, s)) for x, s in zip(batch, scored,
                                                                                                 strict=True)]
        return rankings


class BERT4RecRanker(RankerBase):
    """The ``bert4rec`` ranker: loads ``options["checkpoint"]`` or ``<data>/checkpoints/bert4rec/<dataset>``."""

    def __init__(self, ctx: RankerContext) -> None:
        self.name = str(ctx.options.get("registry_name", "bert4rec"))
        dataset = ctx.dataset
        if not has_histories(dataset):
            raise RankerUnavailable(f"bert4rec needs user histories; {dataset.name!r} instances carry "
                                    f"queries only")
        path = Path(ctx.options.get("checkpoint") or default_checkpoint_dir(dataset.name))
        meta = _read_meta(path)
        if meta is None:
            raise RankerUnavailable(f"no bert4rec checkpoint in {path}; run "
                                    f"`flexbench train bert4rec --dataset {dataset.name}`")
        if meta["run_key"]["fingerprint"] != dataset.fingerprint:
            raise RankerUnavailable(f"the bert4rec checkpoint in {path} was trained on other data than the "
                                    f"prepared {dataset.name!r}; run `flexbench train bert4rec --dataset "
                                    f"{dataset.name} --no-resume`")
        self.bert4rec = BERT4RecModel.load(path)
        self.batch_size = int(ctx.options.get("batch_size", 256))
        source = meta["run_key"].get("train_on", "observed")  # checkpoints from before the option: observed
        self._provenance = {"model": f"RecBole BERT4Rec on the {source} log ({path})",
                           "checkpoint_key": meta["run_key"],
                           "best_epoch": meta["best_epoch"], "train_seconds": meta["train_seconds"]}

    def provenance(self, need: str) -> dict[str, Any]:
        """The checkpoint's training source, key, best epoch and training time."""
        return self._provenance

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """Need-agnostic: the same ranking for every need."""
        return self.bert4rec.rank(instances, self.batch_size)
