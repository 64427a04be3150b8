"""``python -m ghosttalk.contract [--nickname-table]``: write the page's copy of the contract."""

import argparse

from ghosttalk.contract.nickname import write_table
from ghosttalk.contract.page import write_module

parser = argparse.ArgumentParser(prog="python -m ghosttalk.contract", description=__doc__)
parser.add_argument(
    "--nickname-table",
    action="store_true",
    help="also rewrite web/static/js/nickname-rule.js from this Python's Unicode database (a new Unicode "
    "version changes which characters a name may hold)",
)
if parser.parse_args().nickname_table:
    write_table()
write_module()
