#!/usr/bin/env python3
"""Deterministic benchmark corpus: mixed languages and code, 5 to ~1000 tokens per text.

    python3 bench/corpus.py --texts 48 --out bench/corpus.jsonl [--tokenizer tokenizer.json]

Each line is {"id": i, "kind": "...", "tokens": n, "text": "..."}, where `tokens` counts the
text's Qwen3 tokens plus the <|endoftext|> every input gets (all engines are credited with the
same count). Lengths are log-uniform between 5 and 1000 tokens. The same seed always gives the
same corpus; the committed bench/corpus.jsonl is what `gguf-embed bench` uses by default.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))

# Short queries (a few tokens each), for the short end of the length range.
SHORT = [
    "cold brew coffee", "rust json parser", "天气预报", "東京 ホテル", "погода завтра",
    "read file python", "capital of France", "مطاعم قريبة", "binary search", "bahn fahrplan",
]

POOLS = {
    "english": [
        "Local embedding models turn text into vectors that capture meaning.",
        "The library memory-maps the model file, so starting it costs almost nothing.",
        "A search index compares a query vector with millions of document vectors.",
        "Quantized weights trade a little precision for a much smaller memory footprint.",
        "The committee postponed its decision until the quarterly figures were audited.",
        "Rainfall in the northern valleys was twice the seasonal average this spring.",
        "She wrote the report in the evening, after the children had gone to sleep.",
        "Batching several sequences into one decode keeps every core busy.",
    ],
    "chinese": [
        "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。",
        "这个城市的地铁系统每天运送数百万乘客。",
        "研究人员发现，充足的睡眠有助于提高记忆力和注意力。",
        "向量检索可以在毫秒内从海量文档中找到相关内容。",
        "今年的粮食产量比去年增长了百分之五。",
    ],
    "japanese": [
        "東京は日本の首都であり、世界有数の大都市です。",
        "このモデルは多言語のテキストを同じベクトル空間に埋め込みます。",
        "週末には家族で近くの山へハイキングに出かけました。",
        "新しい図書館は駅から歩いて五分のところにあります。",
    ],
    "russian": [
        "Москва — столица России и крупнейший город страны.",
        "Учёные разработали новый метод очистки воды от микропластика.",
        "Поезд прибыл на станцию с опозданием на двадцать минут.",
        "Векторный поиск позволяет находить документы по смыслу, а не по словам.",
    ],
    "arabic": [
        "اللغة العربية هي إحدى أكثر اللغات انتشاراً في العالم.",
        "افتتحت المدينة حديقة عامة جديدة بالقرب من النهر.",
        "يعمل الباحثون على تطوير نماذج لغوية أكثر كفاءة.",
    ],
    "german": [
        "Die Bibliothek bleibt wegen Renovierungsarbeiten bis Ende Mai geschlossen.",
        "Größere Modelle liefern bessere Ergebnisse, brauchen aber mehr Speicher.",
        "Der Zug nach München fährt heute von Gleis sieben ab.",
    ],
    "spanish": [
        "El mercado central abre todos los días a las siete de la mañana.",
        "Los investigadores publicaron sus resultados en una revista científica.",
        "La búsqueda semántica encuentra documentos por su significado.",
    ],
    "hindi": [
        "भारत एक विशाल और विविधतापूर्ण देश है।",
        "बारिश के मौसम में नदियों का जल स्तर बढ़ जाता है।",
        "नई तकनीक से किसानों को बेहतर फसल मिल रही है।",
    ],
    "korean": [
        "서울은 대한민국의 수도이며 가장 큰 도시입니다.",
        "이 도서관은 주말에도 늦게까지 문을 엽니다.",
        "연구진은 새로운 배터리 소재를 개발했다고 발표했습니다.",
    ],
    "rust": [
        "fn parse_line(line: &str) -> Option<(String, u32)> {\n    let (k, v) = line.split_once('=')?;\n    Some((k.trim().to_string(), v.trim().parse().ok()?))\n}\n",
        "impl Iterator for Counter {\n    type Item = u64;\n    fn next(&mut self) -> Option<u64> {\n        self.n += 1;\n        (self.n <= self.max).then_some(self.n)\n    }\n}\n",
        "let handles: Vec<_> = (0..4).map(|i| std::thread::spawn(move || work(i))).collect();\nfor h in handles { h.join().unwrap(); }\n",
    ],
    "python": [
        "def chunks(xs, n):\n    \"\"\"Yield successive n-sized chunks.\"\"\"\n    for i in range(0, len(xs), n):\n        yield xs[i:i + n]\n",
        "class Cache:\n    def __init__(self, size=128):\n        self.size = size\n        self.data = {}\n\n    def get(self, key, default=None):\n        return self.data.get(key, default)\n",
        "with open(path, encoding='utf-8') as f:\n    rows = [line.rstrip('\\n').split('\\t') for line in f]\n",
    ],
    "javascript": [
        "export async function fetchJson(url, opts = {}) {\n  const res = await fetch(url, opts);\n  if (!res.ok) throw new Error(`HTTP ${res.status}`);\n  return res.json();\n}\n",
        "const debounce = (fn, ms) => {\n  let t;\n  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };\n};\n",
    ],
    "sql": [
        "SELECT c.name, COUNT(o.id) AS orders\nFROM customers c\nLEFT JOIN orders o ON o.customer_id = c.id\nGROUP BY c.name\nORDER BY orders DESC\nLIMIT 10;\n",
        "CREATE INDEX idx_events_time ON events (created_at);\n",
    ],
}


def count_tokens(tok, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False).ids) + 1  # + <|endoftext|>


def make_text(rng: random.Random, tok, kind: str, target: int) -> str:
    if target < 12:
        return rng.choice(SHORT)
    pool = POOLS[kind]
    code = kind in ("rust", "python", "javascript", "sql")
    parts: list[str] = []
    text = ""
    while True:
        parts.append(rng.choice(pool))
        candidate = ("\n" if code else " ").join(parts)
        n = count_tokens(tok, candidate)
        if n > target and parts[:-1]:
            return text
        text = candidate
        if n >= target:
            return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=48)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--min-tokens", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=1000)
    ap.add_argument("--out", default="-")
    ap.add_argument("--tokenizer", default=None, help="path to Qwen3 tokenizer.json (default: npm)")
    args = ap.parse_args()

    import make_fixtures

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(make_fixtures.fetch_tokenizer(args.tokenizer)))
    tok.encode_special_tokens = True
    rng = random.Random(args.seed)
    kinds = sorted(POOLS)
    lines = []
    lo, hi = math.log(args.min_tokens), math.log(args.max_tokens)
    for i in range(args.texts):
        kind = kinds[i % len(kinds)]
        target = int(round(math.exp(rng.uniform(lo, hi))))
        text = make_text(rng, tok, kind, target)
        lines.append({"id": i, "kind": kind, "tokens": count_tokens(tok, text), "text": text})
    total = sum(line["tokens"] for line in lines)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    for line in lines:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"{len(lines)} texts, {total} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
