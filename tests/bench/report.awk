# SPDX-License-Identifier: GPL-2.0-or-later
# report.awk — turns tests/bench/bench.sh's raw rows into summary.csv, the stdout table, the target checks and the
# body of results.md.
#
#   awk -F, -v summary=summary.csv -v md=results.md -v target=90 -f report.awk meta.csv runs.csv
#
# meta.csv rows: backend,NAME,FORMAT,FRESH,,DESC | skip,NAME,,,,WHY | decision,NAME,CACHE,AIO,RULE,REASONS |
#                label,NAME,CACHE,AIO,SYSTEM,NOTE | launch,4disks,BACKENDS,,,NOTE |
#                memcg,,VERSION|none,DIR,,NOTE | limit,NAME,LIMIT_MIB,GUEST_MIB,,NOTE
# runs.csv rows: round,seq,time,load1,backend,config,cache,aio,source,test,value,unit,status,note
# Plain POSIX awk (Debian's mawk): no asort, no gensub, no length(array).

function isort(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
}

function quant(a, n, q,    p, lo, hi) {
	p = 1 + (n - 1) * q
	lo = int(p)
	hi = lo < n ? lo + 1 : lo
	return a[lo] + (a[hi] - a[lo]) * (p - lo)
}

function add(key, v) {
	N[key]++
	V[key, N[key]] = v + 0
}

# Sets Sn, Smed, Smin, Smax, Sq1, Sq3 for one key; Sn = 0 when there is nothing.
function stats(key,    i, a, n) {
	n = Sn = N[key] + 0
	if (n == 0)
		return 0
	for (i = 1; i <= n; i++)
		a[i] = V[key, i]
	isort(a, n)
	Smin = a[1]
	Smax = a[n]
	Smed = quant(a, n, 0.5)
	Sq1 = quant(a, n, 0.25)
	Sq3 = quant(a, n, 0.75)
	return n
}

function fmt(key, unit) {
	if (!stats(key))
		return "-"
	if (Sn == 1)
		return sprintf("%.0f", Smed)
	return sprintf("%.0f [%.0f-%.0f]", Smed, Smin, Smax)
}

function k(b, config, cell, source, test) {
	return b SUBSEP config SUBSEP cell SUBSEP source SUBSEP test
}

function pct(x) {
	return sprintf("%+.0f %%", (x - 1) * 100)
}

function both(s) {
	print s
	print s >> md
}

BEGIN {
	ncells = split("none/threads none/native none/io_uring writeback/threads writeback/native writeback/io_uring " \
		"writethrough/threads writethrough/native writethrough/io_uring directsync/threads directsync/native " \
		"directsync/io_uring", CELL, " ")
	ngt = split("randread_qd1 randread_qd8 randwrite_qd1 randwrite_qd8 seqread geomean_qd8", GT, " ")
	nqt = split("read_qd1 read_qd8 write_qd1 write_qd8", QT, " ")
	nmt = split("current_mib file_mib anon_mib peak_mib limit_hits oom_kills", MT, " ")
	if (target == "")
		target = 90
}

FNR == 1 { next }

FILENAME == ARGV[1] {
	if ($1 == "backend") {
		BORDER[++nb] = $2
		BDESC[$2] = $6
	} else if ($1 == "skip") {
		SKIP[++nskip] = $2 ": " $6
	} else if ($1 == "decision") {
		DCELL[$2] = $3 "/" $4
		DRULE[$2] = $5
		DWHY[$2] = $6
	} else if ($1 == "label") {
		c = $3 "/" $4
		LAB[$2, c] = (LAB[$2, c] != "" ? LAB[$2, c] "; " : "") $5
		LCELL[$2, $5] = c
		LNOTE[$2, $5] = $6
	} else if ($1 == "launch") {
		LDISKS = $3
	} else if ($1 == "memcg") {
		MEMV = $3
		MEMWHY = $6
	} else if ($1 == "limit") {
		LIMIT[$2] = $3
	}
	next
}

{
	b = $5; config = $6; cell = $7 "/" $8; src = $9; test = $10; v = $11; st = $13
	if (src == "preflight") {
		PRE[b, cell] = st
		if (st != "ok") {
			why = $14
			sub(/^-drive [^ ]*: /, "", why) # QEMU repeats the whole -drive value first
			PREWHY[b, cell] = why
		}
		next
	}
	if (src == "guest" || src == "qemu-img") {
		HAS[b, config, cell] = 1
		if (st != "ok") {
			FAIL[b, config, cell]++
			next
		}
		add(k(b, config, cell, src, test), v)
		if (src == "guest" && (test == "randread_qd8" || test == "randwrite_qd8")) {
			boot = b SUBSEP config SUBSEP cell SUBSEP $1 SUBSEP $2
			BOOT[boot] = 1
			if (test == "randread_qd8")
				RR8[boot] = v
			else
				RW8[boot] = v
		}
		next
	}
	if (src == "memcg") {
		HASM[b, config, cell] = 1
		if (st == "ok")
			add(k(b, config, cell, src, test), v)
		else if (test == "current_mib")
			MFAIL[b, config, cell]++
		next
	}
	if (src == "agent" && st == "ok") {
		add("agent" SUBSEP test, v)
		next
	}
	if (src == "launch") {
		if (st == "ok")
			LT[$1, config] = v
		else if (st == "warmup")
			LW[config] = v
		if ($1 > maxpair)
			maxpair = $1
		next
	}
}

END {
	# The per-boot geometric mean of randread QD8 and randwrite QD8: the figure the targets and the chart use.
	for (boot in BOOT) {
		if (!(boot in RR8) || !(boot in RW8) || RR8[boot] <= 0 || RW8[boot] <= 0)
			continue
		split(boot, bp, SUBSEP)
		add(k(bp[1], bp[2], bp[3], "guest", "geomean_qd8"), sqrt(RR8[boot] * RW8[boot]))
	}

	# ---- summary.csv
	print "backend,config,cache,aio,labels,source,test,n,median,min,max,q1,q3,unit" > summary
	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		for (pass = 1; pass <= 2; pass++) {
			config = pass == 1 ? "kvm-launch" : "matrix"
			for (j = 1; j <= ncells; j++) {
				cell = CELL[j]
				split(cell, ca, "/")
				labels = config == "kvm-launch" ? "kvm-launch built-in policy" : LAB[b, cell]
				if (config == "matrix" && cell == DCELL[b])
					labels = labels (labels != "" ? "; " : "") "= kvm-launch choice"
				if (config == "matrix" && PRE[b, cell] != "" && PRE[b, cell] != "ok") {
					printf "%s,%s,%s,%s,%s,preflight,refused,0,,,,,,\n", b, config, ca[1], ca[2], labels > summary
					continue
				}
				for (t = 1; t <= ngt + nqt + nmt; t++) {
					src = t <= ngt ? "guest" : t <= ngt + nqt ? "qemu-img" : "memcg"
					test = t <= ngt ? GT[t] : t <= ngt + nqt ? QT[t - ngt] : MT[t - ngt - nqt]
					if (!stats(k(b, config, cell, src, test)))
						continue
					unit = test == "seqread" ? "MBps" : src == "memcg" ? (test ~ /_mib$/ ? "MiB" : "count") : "iops"
					printf "%s,%s,%s,%s,%s,%s,%s,%d,%.1f,%.1f,%.1f,%.1f,%.1f,%s\n", b, config, ca[1], ca[2], labels, src,
						test, Sn, Smed, Smin, Smax, Sq1, Sq3, unit > summary
				}
			}
		}
	}
	split("vmrss rss pss", at, " ")
	for (t = 1; t <= 3; t++)
		if (stats("agent" SUBSEP at[t]))
			printf "agent,kvm-launch,,,kvm-launch --agent,agent,%s,%d,%.0f,%.0f,%.0f,%.1f,%.1f,KiB\n", at[t], Sn, Smed, Smin,
				Smax, Sq1, Sq3 > summary

	# ---- the guest table
	both("")
	both("## Guest I/O (inside the TCG guest, virtio-blk): median [min-max] over the rounds")
	print ""
	printf "%-9s %-34s %-21s %-19s %-19s %-19s %-19s %-16s %-19s\n", "backend", "configuration", "cache/aio",
		"randread QD1", "randread QD8", "randwrite QD1", "randwrite QD8", "seqread MB/s", "geomean QD8"
	print "" >> md
	print "| backend | configuration | cache/aio | randread QD1 IOPS | randread QD8 IOPS | randwrite QD1 IOPS | randwrite QD8 IOPS | seqread MB/s | geomean QD8 |" >> md
	print "|---|---|---|---|---|---|---|---|---|" >> md
	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		for (pass = 1; pass <= 2; pass++) {
			config = pass == 1 ? "kvm-launch" : "matrix"
			for (j = 1; j <= ncells; j++) {
				cell = CELL[j]
				refused = config == "matrix" && PRE[b, cell] != "" && PRE[b, cell] != "ok"
				if (!HAS[b, config, cell] && !refused)
					continue
				if (config == "kvm-launch") {
					label = "**kvm-launch** (built-in policy)"
					tlabel = "KVM-LAUNCH (built-in policy)"
				} else {
					label = LAB[b, cell]
					if (cell == DCELL[b])
						label = label (label != "" ? "; " : "") "= kvm-launch's choice"
					tlabel = label
				}
				if (refused) {
					printf "%-9s %-34s %-21s refused by QEMU: %s\n", b, tlabel, cell, PREWHY[b, cell]
					printf "| %s | %s | %s | refused by QEMU: %s ||||||\n", b, label, cell, PREWHY[b, cell] >> md
					continue
				}
				for (t = 1; t <= ngt; t++)
					F[t] = fmt(k(b, config, cell, "guest", GT[t]))
				if (FAIL[b, config, cell])
					tlabel = tlabel " (" FAIL[b, config, cell] " failed)"
				printf "%-9s %-34s %-21s %-19s %-19s %-19s %-19s %-16s %-19s\n", b, tlabel, cell, F[1], F[2], F[3], F[4], F[5],
					F[6]
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", b, label, (config == "kvm-launch" ? "**" cell "**" : cell),
					F[1], F[2], F[3], F[4], F[5], F[6] >> md
			}
		}
	}
	both("")
	both("geomean QD8 = geometric mean of randread QD8 and randwrite QD8 IOPS of the same boot.")
	both("Labels: what libvirt (no cache/io in the XML), nova and Proxmox VE set by default on that backend; those runs")
	both("are the matrix cells, not separate boots.  \"= kvm-launch's choice\" is the same cell started without kvm-launch.")
	for (i = 1; i <= nb; i++)
		both("- " BORDER[i] ": " BDESC[BORDER[i]] "; kvm-launch: " DCELL[BORDER[i]] " (" DRULE[BORDER[i]] ")")
	for (i = 1; i <= nskip; i++)
		both("- skipped " SKIP[i])

	memory_table()

	# ---- the qemu-img reference table
	have_qi = 0
	for (key in N)
		if (index(key, SUBSEP "qemu-img" SUBSEP))
			have_qi = 1
	if (have_qi) {
		both("")
		both("## Reference: qemu-img bench (QEMU's block layer alone, same image, engine -i and cache -t), IOPS")
		print ""
		printf "%-9s %-21s %-19s %-19s %-19s %-19s %-12s %-12s\n", "backend", "cache/aio", "read QD1", "read QD8",
			"write QD1", "write QD8", "guest/qi rd8", "guest/qi wr8"
		print "" >> md
		print "| backend | cache/aio | read QD1 | read QD8 | write QD1 | write QD8 | guest / qemu-img, read QD8 | guest / qemu-img, write QD8 |" >> md
		print "|---|---|---|---|---|---|---|---|" >> md
		for (i = 1; i <= nb; i++) {
			b = BORDER[i]
			for (j = 1; j <= ncells; j++) {
				cell = CELL[j]
				if (!N[k(b, "matrix", cell, "qemu-img", "read_qd8")] && !N[k(b, "matrix", cell, "qemu-img", "write_qd8")])
					continue
				for (t = 1; t <= nqt; t++)
					F[t] = fmt(k(b, "matrix", cell, "qemu-img", QT[t]))
				r1 = r2 = "-"
				if (stats(k(b, "matrix", cell, "qemu-img", "read_qd8"))) {
					qm = Smed
					if (stats(k(b, "matrix", cell, "guest", "randread_qd8")) && qm > 0)
						r1 = sprintf("%.0f %%", 100 * Smed / qm)
				}
				if (stats(k(b, "matrix", cell, "qemu-img", "write_qd8"))) {
					qm = Smed
					if (stats(k(b, "matrix", cell, "guest", "randwrite_qd8")) && qm > 0)
						r2 = sprintf("%.0f %%", 100 * Smed / qm)
				}
				printf "%-9s %-21s %-19s %-19s %-19s %-19s %-12s %-12s\n", b, cell, F[1], F[2], F[3], F[4], r1, r2
				printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", b, cell, F[1], F[2], F[3], F[4], r1, r2 >> md
			}
		}
		both("")
		both("qemu-img bench runs 4 KiB requests at a fixed stride (it has no random mode); guest / qemu-img shows how much")
		both("of the block layer's rate survives the TCG guest, virtio-blk and the guest kernel.")
	}

	# ---- target checks
	both("")
	both("## Target checks (geomean of randread QD8 and randwrite QD8 IOPS, medians)")
	both("")
	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		dc = DCELL[b]
		if (!stats(k(b, "kvm-launch", dc, "guest", "geomean_qd8"))) {
			# kvm-launch may have applied another cell than --dry-run said: take any kvm-launch row
			for (j = 1; j <= ncells; j++)
				if (stats(k(b, "kvm-launch", CELL[j], "guest", "geomean_qd8"))) {
					dc = CELL[j]
					break
				}
		}
		if (!stats(k(b, "kvm-launch", dc, "guest", "geomean_qd8"))) {
			both("- " b ": no kvm-launch measurement: MISS")
			continue
		}
		dmed = Smed; dmin = Smin; dmax = Smax
		best = ""; bmed = 0
		for (j = 1; j <= ncells; j++)
			if (stats(k(b, "matrix", CELL[j], "guest", "geomean_qd8")) && Smed > bmed) {
				best = CELL[j]; bmed = Smed; bmin = Smin; bmax = Smax
			}
		if (best == "") {
			both("- " b ": no matrix measurement to compare with")
			continue
		}
		p = 100 * dmed / bmed
		verdict = p >= target ? "PASS" : "MISS"
		noise = (dmax >= bmin && bmax >= dmin) ? ", ranges overlap" : ""
		line = sprintf("- **%s**: kvm-launch %s = %.0f [%.0f-%.0f]; best safe combination %s = %.0f [%.0f-%.0f]: %.0f %% of the best (target >= %s %%): **%s**%s",
			b, dc, dmed, dmin, dmax, best, bmed, bmin, bmax, p, target, verdict, noise)
		both(line)
		if (best != dc)
			both(sprintf("  - winner here: %s, %s over kvm-launch's choice", best, pct(bmed / dmed)))
		# The same question among the O_DIRECT modes only (none, directsync): no host page cache, as kvm-launch wants.
		bestd = ""; dbm = 0
		for (j = 1; j <= ncells; j++)
			if (CELL[j] ~ /^(none|directsync)\// && stats(k(b, "matrix", CELL[j], "guest", "geomean_qd8")) && Smed > dbm) {
				bestd = CELL[j]; dbm = Smed; dbmin = Smin; dbmax = Smax
			}
		if (bestd != "" && bestd != best)
			both(sprintf("  - among the O_DIRECT modes (none, directsync) the best is %s = %.0f [%.0f-%.0f]: kvm-launch reaches %.0f %% of it%s",
				bestd, dbm, dbmin, dbmax, 100 * dmed / dbm, (dmax >= dbmin && dbmax >= dmin) ? " (ranges overlap)" : ""))
		if (stats(k(b, "matrix", dc, "guest", "geomean_qd8")))
			both(sprintf("  - the same cell %s started by plain QEMU: %.0f [%.0f-%.0f] (kvm-launch run / plain run = %.2f)",
				dc, Smed, Smin, Smax, dmed / Smed))
		split("nova|libvirt default|Proxmox|Proxmox LVM", sys, "|")
		for (s = 1; s <= 4; s++) {
			c = LCELL[b, sys[s]]
			if (c == "")
				continue
			if (c == dc) {
				both(sprintf("  - vs %s (%s): the same setting as kvm-launch", sys[s], c))
				continue
			}
			if (PRE[b, c] != "" && PRE[b, c] != "ok") {
				both(sprintf("  - vs %s (%s): refused by QEMU here", sys[s], c))
				continue
			}
			if (!stats(k(b, "matrix", c, "guest", "geomean_qd8"))) {
				both(sprintf("  - vs %s (%s): not measured", sys[s], c))
				continue
			}
			check = (sys[s] == "nova" || sys[s] == "libvirt default")
			ov = (dmax >= Smin && Smax >= dmin) ? " (ranges overlap: within noise)" : ""
			both(sprintf("  - vs %s (%s) = %.0f [%.0f-%.0f]: kvm-launch %s%s%s", sys[s], c, Smed, Smin, Smax, pct(dmed / Smed),
				check ? (dmed > Smed ? ": **beats it**" : ": **MISS** (does not beat it)") : " (information)", ov))
		}
	}

	# ---- launch overhead: tests/bench/start-cost.sh measures it (start.md beside this file)
	both("")
	both("What a start through kvm-launch costs: start.md (tests/bench/start-cost.sh, run by make bench after this).")

	# ---- agent memory
	both("")
	both("## kvm-launch --agent resident memory (sampled once per kvm-launch boot, while the guest does I/O)")
	both("")
	if (stats("agent" SUBSEP "vmrss")) {
		line = sprintf("- VmRSS %.0f KiB [%.0f-%.0f]", Smed, Smin, Smax)
		if (stats("agent" SUBSEP "rss"))
			line = line sprintf(", smaps_rollup Rss %.0f KiB [%.0f-%.0f]", Smed, Smin, Smax)
		if (stats("agent" SUBSEP "pss"))
			line = line sprintf(", Pss %.0f KiB [%.0f-%.0f]", Smed, Smin, Smax)
		both(line sprintf(" (%d samples)", Sn))
	} else
		both("- no agent sample")
}

# The median of KEY, or -1.
function med(key) {
	return stats(key) ? Smed : -1
}

# ---- what each VM cost the host: its memory cgroup, beside its IOPS
function memory_table(    i, j, b, pass, config, cell, label, F, l, kc, kg, km, c, s, sys, g, m) {
	both("")
	both("## Host memory per VM (the VM's memory cgroup): median [min-max] MiB over the rounds")
	both("")
	if (MEMV == "none" || MEMV == "") {
		both("- not measured: " (MEMWHY != "" ? MEMWHY : "no memcg rows in runs.csv"))
		return
	}
	print ""
	printf "%-9s %-34s %-21s %-17s %-17s %-17s %-17s %-17s %-7s %-5s\n", "backend", "configuration", "cache/aio",
		"geomean QD8", "randwrite QD8", "MiB end of I/O", "page cache MiB", "peak MiB", "lim.hit", "OOM"
	print "| backend | configuration | cache/aio | geomean QD8 IOPS | randwrite QD8 IOPS | MiB at end of I/O | of it page cache MiB | peak MiB | limit hits | OOM kills |" >> md
	print "|---|---|---|---|---|---|---|---|---|---|" >> md
	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		for (pass = 1; pass <= 2; pass++) {
			config = pass == 1 ? "kvm-launch" : "matrix"
			for (j = 1; j <= ncells; j++) {
				cell = CELL[j]
				if (!HASM[b, config, cell])
					continue
				label = config == "kvm-launch" ? "**kvm-launch** (built-in policy)" : LAB[b, cell]
				if (config == "matrix" && cell == DCELL[b])
					label = label (label != "" ? "; " : "") "= kvm-launch's choice"
				F[1] = fmt(k(b, config, cell, "guest", "geomean_qd8"))
				F[2] = fmt(k(b, config, cell, "guest", "randwrite_qd8"))
				F[3] = fmt(k(b, config, cell, "memcg", "current_mib"))
				F[4] = fmt(k(b, config, cell, "memcg", "file_mib"))
				F[5] = fmt(k(b, config, cell, "memcg", "peak_mib"))
				F[6] = stats(k(b, config, cell, "memcg", "limit_hits")) ? sprintf("%.0f", Smax) : "-"
				F[7] = stats(k(b, config, cell, "memcg", "oom_kills")) ? sprintf("%.0f", Smax) : "-"
				l = label
				gsub(/\*/, "", l)
				if (MFAIL[b, config, cell])
					l = l " (" MFAIL[b, config, cell] " failed)"
				printf "%-9s %-34s %-21s %-17s %-17s %-17s %-17s %-17s %-7s %-5s\n", b, substr(l, 1, 34), cell,
					F[1], F[2], F[3], F[4], F[5], F[6], F[7]
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", b, label,
					(config == "kvm-launch" ? "**" cell "**" : cell), F[1], F[2], F[3], F[4], F[5], F[6], F[7] >> md
			}
		}
	}
	both("")
	both("MiB at end of I/O = the cgroup's charge (" (MEMV == "v1" ? "memory.usage_in_bytes" : "memory.current") \
		") once the guest's last measurement is done; page cache = " (MEMV == "v1" ? "memory.stat total_cache" : \
		"memory.stat file") "; peak = " (MEMV == "v1" ? "memory.max_usage_in_bytes" : "memory.peak") \
		" over the VM's life.")
	both("The charge is QEMU's own memory (guest RAM as the guest touches it, TCG's code buffer) plus the page cache its")
	both("disk I/O brought in; the image is evicted from the host cache before every boot.  Limit hits and OOM kills: the")
	both("most over the rounds (limit hits = " (MEMV == "v1" ? "memory.failcnt" : "memory.events max") ").")
	for (b in LIMIT)
		both("- " b ": the VM's cgroup is limited to " LIMIT[b] " MiB.")
	# The trade per backend: what the named defaults buy and cost against kvm-launch's choice.
	both("")
	both("Per backend, against kvm-launch's run (geomean QD8 IOPS, peak MiB):")
	split("libvirt default|nova|Proxmox|Proxmox LVM", sys, "|")
	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		kc = ""
		for (j = 1; j <= ncells; j++)
			if (HASM[b, "kvm-launch", CELL[j]])
				kc = CELL[j]
		kg = med(k(b, "kvm-launch", kc, "guest", "geomean_qd8"))
		km = med(k(b, "kvm-launch", kc, "memcg", "peak_mib"))
		if (kc == "" || kg <= 0 || km < 0)
			continue
		for (s = 1; s <= 4; s++) {
			c = LCELL[b, sys[s]]
			if (c == "")
				continue
			g = med(k(b, "matrix", c, "guest", "geomean_qd8"))
			m = med(k(b, "matrix", c, "memcg", "peak_mib"))
			if (g <= 0 || m < 0)
				continue
			if (c == kc) {
				both(sprintf("- %s: %s (%s): the same setting as kvm-launch (its plain-QEMU run: %.0f IOPS at %.0f MiB; the gap to kvm-launch's run is run-to-run noise)",
					b, sys[s], c, g, m))
				continue
			}
			both(sprintf("- %s: %s (%s) %.0f IOPS at %.0f MiB vs kvm-launch (%s) %.0f IOPS at %.0f MiB: %s IOPS, %+.0f MiB per VM",
				b, sys[s], c, g, m, kc, kg, km, pct(g / kg), m - km))
		}
	}
}
