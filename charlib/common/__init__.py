"""Plumbing every stage shares: files written whole or not at all (`files`), progress bars
(`progress`), the machine's threads and devices (`env`), where data, runs and reports live and
which run a name means (`paths`, beside the shipped reference model in `reference/`), and the
class codes with the image size and ink level every stage agrees on (`codes`).
Imports nothing else of charlib: every other subpackage may import it.
"""
