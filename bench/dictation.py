"""Dictation benchmark: WER and medical-term recall on synthetic clinical speech, clean and noisy.

.venv/bin/python -m bench.dictation [--half report|tune|all] [--limit N]

64 sentences written for this benchmark (bench/dictation_sentences.py; even positions tune, odd
positions report) x 3 espeak-ng voices/speeds, each clean and with white noise at 10 dB SNR.
Variants, on the same clips: Whisper tiny.en as shipped; with the clinical prompt; with the
prompt and the lexicon correction; with the correction alone. Also the CPU time of a 10 s clip
with the prompt (the cost the prompt adds to decoding).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from backend.ml.speech import Transcriber, load_transcriber
from backend.ml.speech.metrics import normalize_words, word_error_rate
from backend.ml.speech.vocabulary import PROMPT, correct
from bench.dictation_sentences import SENTENCES
from tests.unit.speech.audio_fixtures import ESPEAK, read_wav, wav_bytes

VOICES = [("en-us", 150), ("en-gb", 175), ("en-us+f3", 195)]
SNR_DB = 10.0


def say(text: str, voice: str, rate: int, folder: Path) -> tuple[npt.NDArray[np.float32], int]:
    if ESPEAK is None:
        raise SystemExit("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    path = folder / "say.wav"
    subprocess.run(
        [ESPEAK, "-v", voice, "-s", str(rate), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return read_wav(path)


def add_noise(
    samples: npt.NDArray[np.float32], snr_db: float, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """White noise at `snr_db` below the speech's power (measured over non-silent samples)."""
    voiced = samples[np.abs(samples) > 0.01]
    power = float(np.mean((voiced if voiced.size else samples) ** 2))
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), samples.shape)
    return np.clip(samples + noise, -1.0, 1.0).astype(np.float32)


def term_recall(terms: tuple[str, ...], hypothesis: str) -> tuple[int, int]:
    hyp = " ".join(normalize_words(hypothesis))
    found = sum(" ".join(normalize_words(t)) in f" {hyp} ".replace("  ", " ") for t in terms)
    return found, len(terms)


def run(args: argparse.Namespace) -> dict[str, object]:
    base = load_transcriber()
    prompted = Transcriber(base._whisper, source=base.source, prompt=PROMPT)  # noqa: SLF001
    indices = range(len(SENTENCES))
    if args.half == "tune":
        indices = range(0, len(SENTENCES), 2)
    elif args.half == "report":
        indices = range(1, len(SENTENCES), 2)
    chosen = [SENTENCES[i] for i in indices][: args.limit or None]
    rng = np.random.default_rng(0)
    rows: list[dict[str, object]] = []
    stream = args.out.with_suffix(".rows.jsonl").open("w", encoding="utf-8") if args.out else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # CPU seconds for a 10 s clip, prompt on (the slower path).
        long_text = " ".join(s for s, _ in SENTENCES[1:8:2])
        clip, sr = say(long_text, "en-us", 175, folder)
        clip = clip[: sr * 10]
        data = wav_bytes(clip, sr)
        prompted.transcribe(data)
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(args.runs):
            c0, w0 = time.process_time(), time.perf_counter()
            prompted.transcribe(data)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        print(
            f"10 s clip, prompt on: wall p50 {statistics.median(wall):.3f} s, CPU p50 "
            f"{statistics.median(cpu):.3f} s, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for n, (sentence, terms) in enumerate(chosen, 1):
            print(f"{n}/{len(chosen)} {time.strftime('%H:%M:%S')}", flush=True)
            for voice, rate in VOICES:
                clean, sr = say(sentence, voice, rate, folder)
                for condition, samples in (
                    ("clean", clean),
                    ("noisy", add_noise(clean, SNR_DB, rng)),
                ):
                    data = wav_bytes(samples, sr)
                    plain = base.transcribe(data).text
                    with_prompt = prompted.transcribe(data).text
                    hyps = {
                        "tiny.en": plain,
                        "prompt": with_prompt,
                        "prompt+correction": correct(with_prompt)[0],
                        "correction": correct(plain)[0],
                    }
                    for variant, hyp in hyps.items():
                        found, total = term_recall(terms, hyp)
                        rows.append(
                            row := {
                                "variant": variant,
                                "condition": condition,
                                "voice": f"{voice}@{rate}",
                                "wer": word_error_rate(sentence, hyp),
                                "terms_found": found,
                                "terms": total,
                                "ref": sentence,
                                "hyp": hyp,
                            }
                        )
                        if stream is not None:
                            stream.write(json.dumps(row) + "\n")
                            stream.flush()
    summary = summarize(rows)
    summary["10s_clip_prompt_wall_p50_s"] = round(statistics.median(wall), 3)
    summary["10s_clip_prompt_cpu_p50_s"] = round(statistics.median(cpu), 3)
    summary["load_1min"] = os.getloadavg()[0]
    return {"summary": summary, "rows": rows}


def summarize(rows: list[dict[str, object]]) -> dict[str, object]:
    """Mean WER and term recall per variant and condition (rows of one or more runs)."""
    summary: dict[str, object] = {"sentences": len({r["ref"] for r in rows})}
    for variant in ("tiny.en", "prompt", "prompt+correction", "correction"):
        for condition in ("clean", "noisy"):
            sel = [r for r in rows if r["variant"] == variant and r["condition"] == condition]
            found = sum(int(r["terms_found"]) for r in sel)  # type: ignore[call-overload]
            total = sum(int(r["terms"]) for r in sel)  # type: ignore[call-overload]
            summary[f"{variant} {condition}"] = {
                "mean_wer": round(statistics.fmean(float(r["wer"]) for r in sel), 4),  # type: ignore[arg-type]
                "term_recall": round(found / max(1, total), 4),
                "clips": len(sel),
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--half", choices=["report", "tune", "all"], default="report")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--summarize", type=Path, default=None, help="rows .jsonl to summarize")
    args = parser.parse_args()
    if args.summarize:
        rows = [json.loads(x) for x in args.summarize.read_text(encoding="utf-8").splitlines()]
        print(json.dumps(summarize(rows), indent=1))
        return
    result = run(args)
    print(f"# dictation benchmark  {time.strftime('%Y-%m-%d %H:%M')}  half={args.half}")
    print(json.dumps(result["summary"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
