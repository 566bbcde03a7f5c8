"""What every step shares: atomic writes and hashes (``io``), colour names (``colors``), the palette reader of a
sprite's colours (``palette``), places on a character (``places``), the line art's closed regions and the flat fill
(``flat``), the manifest and the reference CSV, the progress bars, thread counts and the wording of every offline
stand-in. Imports nothing else of the package.
"""
