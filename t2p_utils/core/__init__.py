"""What every step shares: atomic writes and hashes (``io``), colour names (``colors``), the palette reader of a
sprite's colours (``palette``), places on a character (``places``), the line art's closed regions and the flat fill
(``flat``), the manifest and the reference CSV, the progress bars, thread counts, the wording of every offline
stand-in, the package's import graph (``codegraph``) and the one staleness rule of every step and cache
(``stamps.cache_key``: settings, inputs, code). Imports nothing else of the package.
"""
