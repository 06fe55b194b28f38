"""atheris harness for the Python API: arbitrary bytes as a file of every format poisonscan reads, and random Arrow
tables (random types, nulls, nested lists and structs), through scan, profile and lineage. The only exceptions
allowed are PoisonscanError subclasses; anything else, or a crash of the interpreter, is a finding.

    python python/fuzz/atheris_scan.py -max_total_time=60 [corpus_dir]
"""

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import pyarrow as pa

    import poisonscan

SUFFIXES = [".parquet", ".arrow", ".arrows", ".csv"]
TMP = tempfile.mkdtemp(prefix="poisonscan-atheris-")


def random_array(fdp, n, depth=0):
    kind = fdp.ConsumeIntInRange(0, 8 if depth < 2 else 5)
    mask = [fdp.ConsumeBool() for _ in range(n)] if fdp.ConsumeBool() else None
    if kind == 0:
        return pa.array([fdp.ConsumeInt(8) for _ in range(n)], type=pa.int64(), mask=mask)
    if kind == 1:
        return pa.array([fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat() for _ in range(n)],
                        type=pa.float64(), mask=mask)
    if kind == 2:
        return pa.array([fdp.ConsumeUnicodeNoSurrogates(6) for _ in range(n)], type=pa.string(), mask=mask)
    if kind == 3:
        return pa.array([fdp.ConsumeBool() for _ in range(n)], type=pa.bool_(), mask=mask)
    if kind == 4:
        return pa.array([fdp.ConsumeIntInRange(0, 3) for _ in range(n)], type=pa.int8(), mask=mask).dictionary_encode()
    if kind == 5:
        return pa.array([fdp.ConsumeRegularFloat() for _ in range(n)], type=pa.float32(), mask=mask)
    if kind == 6:
        width = fdp.ConsumeIntInRange(1, 4)
        vals = pa.array([fdp.ConsumeRegularFloat() for _ in range(n * width)], type=pa.float32())
        return pa.FixedSizeListArray.from_arrays(vals, width)
    if kind == 7:
        return pa.array([[fdp.ConsumeRegularFloat() for _ in range(fdp.ConsumeIntInRange(0, 3))] for _ in range(n)])
    child = random_array(fdp, n, depth + 1)
    return pa.StructArray.from_arrays([child], names=["inner"])


def random_table(fdp):
    n = fdp.ConsumeIntInRange(0, 40)
    cols = {f"c{i}": random_array(fdp, n) for i in range(fdp.ConsumeIntInRange(1, 5))}
    if fdp.ConsumeBool():
        cols["label"] = pa.array([str(fdp.ConsumeIntInRange(0, 2)) for _ in range(n)])
    return pa.table(cols)


def call(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except poisonscan.PoisonscanError:
        pass


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 1)
    if mode == 0:
        suffix = SUFFIXES[fdp.ConsumeIntInRange(0, len(SUFFIXES) - 1)]
        path = os.path.join(TMP, "input" + suffix)
        with open(path, "wb") as f:
            f.write(fdp.ConsumeBytes(fdp.remaining_bytes()))
        call(poisonscan.scan, path)
        call(poisonscan.profile, path)
        call(poisonscan.lineage, path)
    else:
        try:
            table = random_table(fdp)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError):
            return
        label = "label" if "label" in table.column_names else None
        call(poisonscan.scan, table, label=label)
        call(poisonscan.profile, table, label=label)
        call(poisonscan.lineage, table)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
