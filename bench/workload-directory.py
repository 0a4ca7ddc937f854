#!/usr/bin/env python3
"""The directory for the reference workload (../shared/bench/load-mailbox.py):
its 20 customer domains as accounts, each with two key contacts subscribed,
so every new ticket fans out. Shared by bench/replay.sh and bench/imap.sh.

    workload-directory.py LOAD_MAILBOX_PY OUT.toml
"""
import re
import sys

text = open(sys.argv[1]).read()
domains = re.findall(r'"([a-z0-9.-]+\.test)"', text.split("DOMAINS = [", 1)[1].split("]", 1)[0])
out = []
for i, d in enumerate(domains, 1):
    out.append(f'[[account]]\nnumber = "OCN-{i:04d}"\nname = "{d}"\ndomains = ["{d}"]\n')
    for who in ("noc", "manager"):
        out.append(f'[[contact]]\nemail = "{who}@{d}"\naccount = "OCN-{i:04d}"\n')
        out.append(f'[[subscription]]\ncontact = "{who}@{d}"\ngroup = "key_contact"\naccount = "OCN-{i:04d}"\n')
open(sys.argv[2], "w").write("\n".join(out))
