from reiqa.cli import entry

entry()
