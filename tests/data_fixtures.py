"""Builders of tiny, valid input folders in each source's on-disk format (written to a
test's tmp_path), so a test can corrupt exactly one thing and check the loader's message."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the project root (holds urllm/)
SHARED_DATA = ROOT.parent / "shared" / "data"

# ---------------------------------------------------------------- URLLM release format

ITEM_HEADER = "idBefore,item_title,idAfter,item_attribute"
# Global ids: art 0..3, office 4..7.
URLLM_ITEMS = {
    "art": [(10, "red brush", 0, "arts crafts painting acme"), (11, "blue canvas", 1, "arts crafts canvas"),
            (12, "green yarn", 2, "arts crafts knitting"), (13, "clay pot", 3, "arts crafts clay")],
    "office": [(20, "black stapler", 4, "office products staplers"), (21, "ring binder", 5, "office products binders"),
               (22, "gel pen", 6, "office products pens"), (23, "desk lamp", 7, "office products lamps")],
}
URLLM_USERS = ["AUSER0", "AUSER1", "AUSER2", "AUSER3"]
# (user index, history, target) per split; each user gives two lines (one per target domain).
URLLM_LINES = {
    "train": [(0, [0, 4, 1], 5), (0, [0, 4, 1], 2), (1, [2, 6], 3), (1, [2, 6], 7)],
    "valid": [(2, [1, 5, 3, 7], 0), (2, [1, 5, 3, 7], 4)],
    "test": [(3, [3, 7, 0], 6), (3, [3, 7, 0], 1)],
}


def urllm_line(user: int, history: list[int], target: int, trailing_tab: bool = True) -> str:
    seq = history + [target]
    tokens = [f"{item}|{pos}|{pos}" for pos, item in enumerate(seq)]
    return "\t".join([str(user), str(len(seq) - 1), *tokens]) + ("\t" if trailing_tab else "")


def write_urllm_release(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in URLLM_ITEMS.items():
        lines = [ITEM_HEADER] + [f"{b},{t},{a},{attr}" for b, t, a, attr in rows]
        (root / f"items_{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "users.txt").write_text("".join(f"{r}\t{i}\n" for i, r in enumerate(URLLM_USERS)), encoding="utf-8")
    for split, rows in URLLM_LINES.items():
        (root / f"{split}.txt").write_text("".join(urllm_line(*r) + "\n" for r in rows), encoding="utf-8")
    return root


def set_line(path: Path, lineno: int, text: str) -> None:
    """Replace line `lineno` (1-based) of a text file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- MovieLens (RecBole atomic)

ML_ITEM_HEADER = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token"
ML_INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ML_MOVIES = [
    ("Heat (1995)", "Heat", "1995", "Action Crime Thriller"),
    ("Alien (1979)", "Alien", "1979", "Horror Sci-Fi"),
    ("Toy Story (1995)", "Toy Story", "1995", "Animation Children's Comedy"),
    ("Casablanca (1942)", "Casablanca", "1942", "Drama Romance War"),  # War: domain A
    ("Annie Hall (1977)", "Annie Hall", "1977", "Comedy Romance"),
]
# (user, movie, rating, timestamp), deliberately not in time order within a user.
ML_RATINGS = [
    ("u1", "Toy Story (1995)", "4", "300"),
    ("u1", "Heat (1995)", "5", "100"),
    ("u1", "Annie Hall (1977)", "2", "200"),
    ("u1", "Alien (1979)", "3", "400"),
    ("u2", "Alien (1979)", "5", "50"),
    ("u2", "Annie Hall (1977)", "5", "50"),  # same time as the line above: file order kept
    ("u2", "Toy Story (1995)", "1", "60"),
    ("u3", "Heat (1995)", "4", "10"),  # u3 has no domain-B movie: dropped
    ("u3", "Alien (1979)", "4", "20"),
]


def write_movielens(root: Path, movies=ML_MOVIES, ratings=ML_RATINGS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ml-1m.item").write_text(
        "\n".join([ML_ITEM_HEADER] + ["\t".join(m) for m in movies]) + "\n", encoding="utf-8"
    )
    (root / "ml-1m.inter").write_text(
        "\n".join([ML_INTER_HEADER] + ["\t".join(r) for r in ratings]) + "\n", encoding="utf-8"
    )
    return root


# ---------------------------------------------------------------- Amazon 2018 dumps

AMAZON_CATS = ("Arts_Crafts_and_Sewing", "Office_Products")
AMAZON_META = {
    AMAZON_CATS[0]: {
        "category": ["Arts, Crafts &amp; Sewing", "Painting"],
        "brand": "Acme",
        "items": {"A1": "Fine &amp; Dandy Brush", "A2": "Canvas Roll", "A3": "Oil Paint Set",
                  "A4": "Wooden Easel", "ARARE": "Rare Glitter"},
    },
    AMAZON_CATS[1]: {
        "category": ["Office Products", "Office &amp; School Supplies"],
        "brand": "Bic Corp",
        "items": {"B1": "Stapler", "B2": "Ring Binder", "B3": "Gel Pens", "B4": "Desk Organizer"},
    },
}


def amazon_reviews() -> dict[str, list[dict]]:
    """Reviews per category. Ten regular users U0..U9 (two A and two B items each, times
    not in file order); U0 also reviews ARARE (reviewed once: dropped by k_core=2); U1
    reviews its first A item twice (kept once, the earlier); LONER has one review and
    ONLYA has no B review (both dropped)."""
    a_items, b_items = ["A1", "A2", "A3", "A4"], ["B1", "B2", "B3", "B4"]
    reviews = {AMAZON_CATS[0]: [], AMAZON_CATS[1]: []}

    def add(cat, user, asin, t):
        reviews[cat].append({"reviewerID": user, "asin": asin, "unixReviewTime": t, "overall": 4.0})

    for i in range(10):
        base = 1_500_000_000 + 10_000 * i
        add(AMAZON_CATS[0], f"U{i}", a_items[i % 4], base + 30)
        add(AMAZON_CATS[0], f"U{i}", a_items[(i + 1) % 4], base + 10)
        add(AMAZON_CATS[1], f"U{i}", b_items[i % 4], base + 40)
        add(AMAZON_CATS[1], f"U{i}", b_items[(i + 2) % 4], base + 20)
    add(AMAZON_CATS[0], "U0", "ARARE", 1_500_000_005)
    add(AMAZON_CATS[0], "U1", "A2", 1_500_010_050)  # repeat of U1's review of A2 at +30
    add(AMAZON_CATS[0], "LONER", "A1", 1_500_000_001)
    add(AMAZON_CATS[0], "ONLYA", "A1", 1_500_000_002)
    add(AMAZON_CATS[0], "ONLYA", "A2", 1_500_000_003)
    return reviews


def _write_json_lines(path: Path, objects: list) -> None:
    text = "".join(json.dumps(o) + "\n" for o in objects)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def write_amazon(root: Path, gz: bool = False, reviews=None, meta=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    reviews = amazon_reviews() if reviews is None else reviews
    meta = AMAZON_META if meta is None else meta
    ext = ".json.gz" if gz else ".json"
    for cat in AMAZON_CATS:
        m = meta[cat]
        _write_json_lines(
            root / f"meta_{cat}{ext}",
            [{"asin": a, "title": t, "category": m["category"], "brand": m["brand"]} for a, t in m["items"].items()],
        )
        _write_json_lines(root / f"{cat}{ext}", reviews[cat])
    return root


def amazon_spec(root: Path, extra: str = "") -> str:
    return f"amazon:{root}:{','.join(AMAZON_CATS)}?k_core=2&min_per_domain=1&valid_frac=0.2&test_frac=0.2{extra}"


def refused_by(call, spec: str, *parts: str, max_length: int | None = None) -> str:
    """The one-line DataError message `call(spec)` raises; asserts it names every part."""
    import pytest

    from urllm.data import DataError

    with pytest.raises(DataError) as info:
        call(spec)
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert "\n" not in message and (max_length is None or len(message) < max_length)
    return message
