"""Command line: thin click commands over the library functions."""

from __future__ import annotations

import functools
import json
import logging
import sys

import click

from echoforge.config import load_config
from echoforge.errors import EchoforgeError, explain, root_cause
from echoforge.registry import Registry, engines, word_aligners


class RegistryChoice(click.Choice):
    """The names a registry holds (read when the option is used or its help is shown)."""

    def __init__(self, registry: Registry, *extra: str):
        self.registry, self.extra = registry, extra
        super().__init__([], case_sensitive=True)

    @property
    def choices(self):
        return (*self.registry.names(), *self.extra)

    @choices.setter
    def choices(self, _):
        pass


def user_errors(fn):
    """Print an EchoforgeError, or a failure of the surroundings that :func:`explain`
    recognises (credentials, network, a missing bucket, CUDA), as one line and exit 2,
    without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EchoforgeError as exc:
            while isinstance(getattr(exc, "cause", None), EchoforgeError):  # raised in a Ray worker
                exc = exc.cause
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:  # noqa: BLE001 - recognised ones get one line, others their traceback
            line = explain(root_cause(exc)) or explain(exc)
            if line is None:
                raise
            click.echo(f"error: {line}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: committed work units are kept; rerun the same command to resume", err=True)
            sys.exit(130)

    return wrapper


class ProgressBar:
    """A tqdm bar over work units fed by progress callbacks ``(entry, done, total)``; close it before errors print."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None
        self.rows = self.rejected = 0
        self.seconds = 0.0

    def _start(self, done: int, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit="unit", desc=self.label, file=sys.stderr, dynamic_ncols=True)

    def _add(self, entry) -> None:
        if entry:  # a build's figures: show what has been made so far
            self.rows += entry["rows"]
            self.rejected += entry["rejected"]
            self.seconds += entry["audio_seconds"]
            self.bar.set_postfix(rows=self.rows, rejected=self.rejected, hours=f"{self.seconds / 3600:.3f}")

    def __call__(self, entry, done: int, total: int) -> None:
        if self.bar is None:
            self._start(done - 1, total)
        self._add(entry)
        self.bar.update(1)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


class BuildProgress(ProgressBar):
    """The build's bar: its first call carries what a resume keeps, so the bar counts what the summary counts."""

    def __call__(self, entry, done: int, total: int) -> None:
        if self.bar is not None:
            return super().__call__(entry, done, total)
        if done:
            click.echo(f"resuming: {done} of {total} work units already committed ({entry['rows']} rows, "
                       f"{entry['rejected']} rejected)", err=True)
        self._start(done, total)
        self._add(entry)


def _echo_report(report: dict, as_json: bool, lines) -> None:
    """Print a report as one JSON object or as its human lines."""
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for line in lines(report):
            click.echo(line)


def run() -> None:
    """The ``echoforge`` command: :func:`main`, then an exit that native model threads
    cannot turn into an abort (see :func:`echoforge.native.exit_now`)."""
    from echoforge.native import exit_now

    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            click.echo(exc.code, err=True)
    exit_now(code)


@click.group()
@click.version_option(package_name="echoforge")
@click.option("-v", "--verbose", is_flag=True, help="Log what the stages do.")
def main(verbose: bool) -> None:
    """Build echo-training speech corpora from text QA and dialogue data."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("inputs", nargs=-1)
@click.option("--output", "-o", required=True, help="Output folder: a path, or an s3:// or gs:// URL.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "arrow"]), help="Shard format.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N input rows.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (local engine).")
@click.option("--engine", type=RegistryChoice(engines), default="local", show_default=True)
@click.option("--ray-address", help="Join this Ray cluster (default: start a local Ray instance).")
@click.option("--beam-option", "beam_options", multiple=True,
              help="Beam pipeline option, e.g. --beam-option=--runner=DataflowRunner (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace a different build in the output folder.")
@click.option("--break-lease", is_flag=True, help="Take over the output from a build known to be gone.")
@click.option("--verify", is_flag=True, help="On resume, check the sha256 of sealed shards too (reads them all).")
@click.option("--retry-quarantined", is_flag=True, help="Recompute the work units an earlier run quarantined.")
@click.option("--ray-timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds to wait for --ray-address to answer.")
@user_errors
def build(inputs, output, config_path, fmt, limit, workers, engine, ray_address, beam_options, overwrite,
          break_lease, verify, retry_quarantined, ray_timeout):
    """Build a corpus from INPUTS (files or datasets); without INPUTS, from the bundled sample.

    Rerunning the same command resumes: committed work units are skipped.
    """
    from echoforge.pipeline.build import build as run_build
    from echoforge.commands.inspect import fail_on, kept_problems, summary_lines

    config = load_config(config_path).with_overrides(output={"format": fmt}, run={"workers": workers})
    if not inputs:
        click.echo("no INPUTS given: building from the bundled sample", err=True)
    options = ({"address": ray_address, "connect_timeout_s": ray_timeout} if engine == "ray"
               else {"pipeline_args": list(beam_options)} if engine == "beam" else {})
    with BuildProgress("build") as bar:
        manifest = run_build(list(inputs), output, config, limit=limit, engine=engine, engine_options=options,
                             overwrite=overwrite, break_lease=break_lease, verify=verify,
                             retry_quarantined=retry_quarantined, on_progress=bar)
    problems = kept_problems(manifest, output)
    if manifest["rows"]:  # a build that kept nothing has only its error to say
        for line in summary_lines(manifest, output, hint=not problems):
            click.echo(line)
    fail_on(problems)


@main.command("dry-run")
@click.argument("inputs", nargs=-1)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--sample", type=click.IntRange(min=1), default=20, show_default=True, help="Input rows to run.")
@click.option("--target-hours", type=click.FloatRange(min=0.001), default=6000.0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), help="Cores the projection assumes (default: this machine's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def dry_run(inputs, config_path, sample, target_hours, workers, as_json):
    """Run a sample through every stage and project cost for a target corpus size."""
    from echoforge.commands.inspect import dry_run as run_dry, dry_run_lines, fail_on

    report = run_dry(list(inputs), load_config(config_path), sample=sample, target_hours=target_hours, cores=workers)
    _echo_report(report, as_json, dry_run_lines)
    fail_on(report["problems"])


@main.command()
@click.argument("directory")
@user_errors
def validate(directory):
    """Check schema, counts, checksums and invariants; exit 1 on any violation."""
    from echoforge.commands.validate import validate_output

    problems, checked = validate_output(directory)
    for p in problems:
        click.echo(f"FAIL {p}")
    click.echo(f"{'invalid' if problems else 'valid'}: {checked} checks, {len(problems)} problems")
    sys.exit(1 if problems else 0)


@main.command()
@click.argument("directory")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def inspect(directory, as_json):
    """Summarise rows, hours, voices, quality figures and rejects by reason."""
    from echoforge.commands.inspect import inspect_lines, inspect_output

    report = inspect_output(directory)
    _echo_report(report, as_json, inspect_lines)


@main.command()
@click.argument("directory")
@user_errors
def unlock(directory):
    """Remove the lease of a build that is known to be gone (crashed on another host)."""
    from echoforge.pipeline.lease import describe, unlock as remove
    from echoforge.storage import folder

    lease = remove(folder(directory))
    click.echo(f"removed the lease of {describe(lease)}" if lease else f"{directory} has no lease")


@main.command()
@click.argument("directory")
@click.argument("repo_id")
@click.option("--public", is_flag=True, help="Make the dataset repo public (default: private).")
@click.option("--revision", help="Branch to push to (default: main).")
@click.option("--staging", type=click.Path(file_okay=False), help="Local folder for a build on object storage.")
@click.option("--allow-incomplete", is_flag=True, help="Push a build whose work units are not all committed.")
@user_errors
def push(directory, repo_id, public, revision, staging, allow_incomplete):
    """Publish a finished build to the Hugging Face Hub as dataset REPO_ID (resumable)."""
    from echoforge.commands.push import push as run_push

    result = run_push(directory, repo_id, private=not public, revision=revision, staging=staging,
                      allow_incomplete=allow_incomplete)
    click.echo(f"pushed {len(result['files'])} files ({result['bytes'] / 1e6:.1f} MB) to {repo_id}: {result['commit']}")


@main.command()
@click.argument("directory")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="HTML file to write (default: report.html inside the build).")
@click.option("--rows", type=click.IntRange(min=0), default=8, show_default=True, help="Rows to sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the row and reject samples.")
@click.option("--compare", help="A second build whose distributions are overlaid.")
@user_errors
def report(directory, output, rows, seed, compare):
    """Write one self-contained HTML page to see and hear a build: figures, plots, sample rows, rejects."""
    from echoforge.commands.report import render_report

    info = render_report(directory, output, rows=rows, seed=seed, compare=compare)
    click.echo(f"wrote {info['output']}: {len(info['plots'])} plots, {info['rows']} rows, "
               f"{info['rejects']} rejects ({info['bytes'] / 1e6:.1f} MB)")


@main.command("fit-units")
@click.argument("inputs", nargs=-1)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Codebook .npy to write.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (voices, tokenizer).")
@click.option("--k", type=click.IntRange(min=2), default=500, show_default=True, help="Number of units.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N input rows.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@user_errors
def fit_units(inputs, output, config_path, k, seed, limit, workers):
    """Fit a k-means codebook on speech synthesised from INPUTS (default: the bundled fitting text)."""
    from echoforge.commands.fit_units import DEFAULT_FIT_INPUT, fit_codebook

    config = load_config(config_path)
    with ProgressBar("fit-units") as bar:
        codebook = fit_codebook(list(inputs) or [str(DEFAULT_FIT_INPUT)], config, k=k, seed=seed, limit=limit,
                                workers=workers, progress=lambda done, total: bar({}, done, total))
    codebook.save(output)
    click.echo(f"wrote {output}: {codebook.size} units from {codebook.provenance['frames']} frames "
               f"({codebook.provenance['speech_seconds'] / 3600:.2f} h of speech)")



def _phase_bars():
    """A progress callback (phase, done, total) drawing one tqdm bar per phase on stderr."""
    from tqdm import tqdm

    bars: dict = {}

    def update(phase, done, total):
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(total=total, desc=phase, unit="row", file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


@main.command("eval-units")
@click.argument("directory")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--limit", type=click.IntRange(min=2), help="Use only the first N rows.")
@click.option("--codebook", type=click.Path(dir_okay=False, exists=True),
              help="Re-tokenize with this k-means codebook instead of reading the stored units.")
@click.option("--baseline-k", type=click.IntRange(min=2), help="Clusters of the MFCC baseline (default: the codebook size).")
@click.option("--fit-fraction", type=click.FloatRange(0.05, 0.9), default=0.25, show_default=True,
              help="Share of the rows that fit the MFCC baseline (the rest are scored).")
@click.option("--no-baseline", is_flag=True, help="Skip the MFCC + k-means baseline.")
@click.option("--no-alignment", is_flag=True, help="Skip the check of word starts against Whisper.")
@click.option("--ctc-aligner", type=RegistryChoice(word_aligners, "none"), default="hama", show_default=True,
              help="CTC forced aligner whose word starts are compared with the synthesiser's.")
@click.option("--ctc-model", help="Wav2Vec2ForCTC checkpoint (directory or Hub id) for --ctc-aligner wav2vec2.")
@user_errors
def eval_units(directory, as_json, limit, codebook, baseline_k, fit_fraction, no_baseline, no_alignment,
               ctc_aligner, ctc_model):
    """Measure the units of a built corpus: PNMI and purity against phone labels from the
    synthesiser, codebook usage, unit rates, an MFCC + k-means baseline, and word alignment."""
    from echoforge.commands.eval_units import evaluate_units, report_lines

    report = evaluate_units(directory, limit=limit, codebook=codebook, baseline=not no_baseline,
                            baseline_k=baseline_k, fit_fraction=fit_fraction, alignment=not no_alignment,
                            ctc_aligner=None if ctc_aligner == "none" else ctc_aligner, ctc_model=ctc_model,
                            progress=_phase_bars())
    _echo_report(report, as_json, report_lines)


@main.command("decode-units")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False), help="Directory for the WAV files.")
@click.option("--rows", type=click.IntRange(min=1), help="Decode only the first N rows.")
@click.option("--model", help="The codec checkpoint, where it is not at the path the build used.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@user_errors
def decode_units(directory, output, rows, model, device):
    """Decode a corpus's codec units (encodec, mimi) back into audio, one WAV per row."""
    from echoforge.commands.decode_units import decode_units as run

    report = run(directory, output, rows=rows, model=model, device=device)
    click.echo(f"wrote {report['rows']} WAV files ({report['seconds']:.1f} s at {report['sample_rate']} Hz) "
               f"of {report['tokenizer']} units to {output}")


@main.command("import-kmeans")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--sha256", required=True, help="The file's full sha256: nothing else is loaded.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Codebook .npy to write.")
@click.option("--vocoder", help="The unit vocoder that speaks these units (recorded with every build).")
@click.option("--layer", type=click.IntRange(min=1), help="The HuBERT layer the k-means was fitted on.")
@user_errors
def import_kmeans(path, sha256, output, vocoder, layer):
    """Convert a fairseq/joblib scikit-learn k-means file into a plain .npy codebook, safely."""
    from echoforge.commands.import_kmeans import import_kmeans as run

    codebook = run(path, sha256, vocoder=vocoder, layer=layer)
    codebook.save(output)
    click.echo(f"wrote {output}: {codebook.size} centres of dimension {codebook.centroids.shape[1]}")


@main.command("fit-unit-lm")
@click.argument("directory")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="sentencepiece model to write.")
@click.option("--vocab-size", type=click.IntRange(min=8), default=2000, show_default=True,
              help="Pieces, including one per unit and 3 special pieces.")
@click.option("--model-type", type=click.Choice(["bpe", "unigram"]), default="bpe", show_default=True)
@click.option("--split", type=click.Choice(["train", "validation", "all"]), default="train", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N rows.")
@user_errors
def fit_unit_lm(directory, output, vocab_size, model_type, split, limit):
    """Fit a unit language (sentencepiece pieces over deduplicated units) on a built corpus."""
    from echoforge.commands.fit_unit_lm import fit_corpus_unit_lm

    lm, info, rows = fit_corpus_unit_lm(directory, output, vocab_size=vocab_size, model_type=model_type,
                                        split=split, limit=limit)
    click.echo(f"wrote {output}: {lm.vocab_size} pieces over {info['tokenizer']} from {rows} rows "
               f"({lm.provenance['units_per_piece']:.2f} deduplicated units per piece)")


@main.command()
@click.argument("directory")
@click.option("--to", "to", default="echox", show_default=True,
              help="Trainer format: echox, echox-dialogues, lhotse-shar, nemo, webdataset.")
@click.option("--output", "-o", required=True, help="Output directory or URL (any fsspec filesystem).")
@click.option("--stage", "stages", help="Comma-separated stages to write (default: all of the format's).")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rows per shard of each split (fixes the files written; keep it on a rerun).")
@click.option("--audio-format", type=click.Choice(["wav", "flac"]), default="wav", show_default=True)
@click.option("--absolute-paths", is_flag=True, help="Audio paths in the lines are absolute (default: relative to OUTPUT).")
@click.option("--tarred", is_flag=True, help="nemo: audio in audio_<n>.tar shards (NeMo's tarred datasets).")
@user_errors
def export(directory, to, output, stages, shard_size, audio_format, absolute_paths, tarred):
    """Write a finished build in a trainer's format; a rerun skips finished shards."""
    from echoforge.commands.export import export_build

    bars = _phase_bars()
    report = export_build(directory, to, output, stages=stages.split(",") if stages else None,
                          shard_size=shard_size, audio_format=audio_format, absolute_paths=absolute_paths,
                          tarred=tarred, progress=lambda done, total: bars("export", done, total))
    rows = ", ".join(f"{k} {v}" for k, v in report["rows"].items())
    click.echo(f"exported {directory} to {output} ({to}): rows per stage: {rows}; "
               f"{report['shards_written']} shards written, {report['shards_skipped']} already there")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def voices(config_path, as_json):
    """List the voices the config's synthesis draws from (role, speaker, backend, sample rate)."""
    from echoforge.commands.voices import list_voices, voices_lines

    _echo_report({"voices": list_voices(load_config(config_path))}, as_json, lambda r: voices_lines(r["voices"]))


@main.command("eval-gate")
@click.argument("directory")
@click.option("--model", default="whisper-base", show_default=True,
              help="The second ASR: tiny.en, whisper-base or a CTranslate2 Whisper model directory.")
@click.option("--sample", type=click.IntRange(min=1), help="Judge at most N kept rows and N gate rejects.")
@click.option("--no-rebuild", is_flag=True, help="Judge kept rows only (do not re-synthesise gate rejects).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def eval_gate(directory, model, sample, no_rebuild, as_json):
    """Compare the gate's decisions with a second, independent ASR on a built corpus."""
    from echoforge.commands.eval_gate import evaluate_gate, report_lines

    report = evaluate_gate(directory, model=model, sample=sample, resynthesize=not no_rebuild,
                           progress=None if as_json else _phase_bars())
    _echo_report(report, as_json, report_lines)


if __name__ == "__main__":
    main()
