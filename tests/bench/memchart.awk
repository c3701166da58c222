# SPDX-License-Identifier: GPL-2.0-or-later
# memchart.awk — the memory chart of tests/bench/bench.sh: IOPS against the host memory each VM cost, by hand (SVG).
#
#   awk -F, -f memchart.awk meta.csv summary.csv > memory.svg
#
# One panel per backend (scenario), the same axes in all: x = peak MiB of the VM's memory cgroup, y = geomean of
# randread QD8 and randwrite QD8 IOPS (medians over the rounds, whiskers min-max), one point per configuration.
# kvm-launch's run is the big red point; L, N, P (P* Proxmox LVM) mark the cells that are libvirt's, nova's and
# Proxmox VE's defaults; a dashed line is the cgroup's limit where one was set.  Plain POSIX awk.

function color(cell) {
	if (cell == "kvm-launch") return "#d62728"
	if (cell ~ /^none\//) return "#2171b5"
	if (cell ~ /^writeback\//) return "#238b45"
	if (cell ~ /^writethrough\//) return "#756bb1"
	if (cell ~ /^directsync\//) return "#636363"
	return "#bbbbbb"
}

function short(cell,    s) {
	s = cell
	sub(/^none/, "none", s); sub(/^writeback/, "wb", s); sub(/^writethrough/, "wt", s); sub(/^directsync/, "ds", s)
	sub(/threads$/, "thr", s); sub(/native$/, "nat", s); sub(/io_uring$/, "uring", s)
	return s
}

function nice(v,    raw, p10, step) {
	raw = v / 5
	p10 = 1
	while (p10 * 10 <= raw) p10 *= 10
	step = raw <= p10 ? p10 : raw <= 2 * p10 ? 2 * p10 : raw <= 5 * p10 ? 5 * p10 : 10 * p10
	return step
}

function kfmt(v) {
	if (v >= 10000) return sprintf("%.0fk", v / 1000)
	if (v >= 1000) return sprintf("%.1fk", v / 1000)
	return sprintf("%.0f", v)
}

FNR == 1 { next }

FILENAME == ARGV[1] {
	if ($1 == "backend") BORDER[++nb] = $2
	else if ($1 == "label") LAB[$2, $3 "/" $4] = (LAB[$2, $3 "/" $4] != "" ? LAB[$2, $3 "/" $4] "; " : "") $5
	else if ($1 == "limit") LIMIT[$2] = $3
	else if ($1 == "memcg") MEMV = $3
	next
}

{
	cell = $2 == "kvm-launch" ? "kvm-launch" : $3 "/" $4
	if ($2 == "kvm-launch") KCELL[$1] = $3 "/" $4
	if ($6 == "guest" && $7 == "geomean_qd8") {
		YM[$1, cell] = $9; YL[$1, cell] = $10; YH[$1, cell] = $11
		if ($11 > ymax) ymax = $11
	} else if ($6 == "memcg" && $7 == "peak_mib") {
		XM[$1, cell] = $9; XL[$1, cell] = $10; XH[$1, cell] = $11
		if ($11 > xmax) xmax = $11
		if ($8 > rounds) rounds = $8
	}
}

END {
	for (b in LIMIT) if (LIMIT[b] + 0 > xmax) xmax = LIMIT[b] + 0
	if (xmax <= 0) xmax = 1
	if (ymax <= 0) ymax = 1
	xs = nice(xmax); xtop = xs * int((xmax + xs - 1e-9) / xs); if (xtop < xmax) xtop += xs
	ys = nice(ymax); ytop = ys * int((ymax + ys - 1e-9) / ys); if (ytop < ymax) ytop += ys
	np = 0
	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		has = 0
		for (key in XM) { split(key, kk, SUBSEP); if (kk[1] == b && (key in YM)) has = 1 }
		if (has) P[++np] = b
	}
	pw = 330; ph = 250; ml = 64; mt = 96; gapx = 40; gapy = 80
	cols = np < 3 ? (np < 1 ? 1 : np) : 3
	rows = int((np + cols - 1) / cols); if (rows < 1) rows = 1
	width = ml + cols * (pw + gapx) + 20
	if (width < 1000) width = 1000
	height = mt + rows * (ph + gapy) + 40
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", width, height, width, height
	printf "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height
	printf "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">kvm-launch bench: IOPS against the host memory each VM cost</text>\n", ml
	printf "<text x=\"%d\" y=\"44\" font-size=\"12\" fill=\"#444\">x: peak of the VM's memory cgroup (%s), MiB. y: geomean(randread QD8, randwrite QD8) IOPS in a TCG guest.</text>\n", ml, MEMV == "v1" ? "memory.max_usage_in_bytes" : "memory.peak"
	printf "<text x=\"%d\" y=\"60\" font-size=\"12\" fill=\"#444\">Medians of %d round(s), whiskers min-max. Big red point: kvm-launch's built-in policy. L libvirt default, N nova, P Proxmox VE (P* LVM).</text>\n", ml, rounds
	printf "<text x=\"%d\" y=\"76\" font-size=\"12\" fill=\"#444\">Blue: cache=none, green: writeback, purple: writethrough, grey: directsync. Dashed red: the cgroup's limit. Up and left is better.</text>\n", ml
	if (np == 0)
		printf "<text x=\"%d\" y=\"%d\" font-size=\"14\">no memory figures in this run</text>\n", ml, mt + 40
	for (p = 1; p <= np; p++) {
		b = P[p]
		x0 = ml + ((p - 1) % cols) * (pw + gapx)
		y0 = mt + int((p - 1) / cols) * (ph + gapy)
		printf "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">%s%s</text>\n", x0, y0 - 6, b, \
			(b in LIMIT) ? " (limit " LIMIT[b] " MiB)" : ""
		for (v = 0; v <= ytop + 1e-9; v += ys) {
			y = y0 + ph - ph * v / ytop
			printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x0, y, x0 + pw, y
			printf "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%s</text>\n", x0 - 4, y + 3, kfmt(v)
		}
		for (v = 0; v <= xtop + 1e-9; v += xs) {
			x = x0 + pw * v / xtop
			printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", x, y0, x, y0 + ph
			printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.0f</text>\n", x, y0 + ph + 13, v
		}
		printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", x0, y0, pw, ph
		printf "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">peak MiB per VM</text>\n", x0 + pw / 2, y0 + ph + 28
		if (b in LIMIT) {
			x = x0 + pw * LIMIT[b] / xtop
			printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d62728\" stroke-dasharray=\"5,4\"/>\n", x, y0, x, y0 + ph
		}
		n = 0
		for (j = 0; j <= 12; j++) {
			if (j == 0) cell = "kvm-launch"
			else {
				split("none/threads none/native none/io_uring writeback/threads writeback/native writeback/io_uring writethrough/threads writethrough/native writethrough/io_uring directsync/threads directsync/native directsync/io_uring", C, " ")
				cell = C[j]
			}
			if (!((b SUBSEP cell) in XM) || !((b SUBSEP cell) in YM)) continue
			x = x0 + pw * XM[b, cell] / xtop
			y = y0 + ph - ph * YM[b, cell] / ytop
			printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n", x0 + pw * XL[b, cell] / xtop, y, x0 + pw * XH[b, cell] / xtop, y, color(cell)
			printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n", x, y0 + ph - ph * YL[b, cell] / ytop, x, y0 + ph - ph * YH[b, cell] / ytop, color(cell)
			lab = j == 0 ? "kvm-launch (" short(KCELL[b]) ")" : short(cell) mark(b, cell)
			printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"%s><title>%s %s: %.0f IOPS, peak %.0f MiB</title></circle>\n", x, y, j == 0 ? 7 : 4, color(cell), j == 0 ? " stroke=\"black\" stroke-width=\"2\"" : " fill-opacity=\"0.85\"", b, j == 0 ? "kvm-launch " KCELL[b] : cell " " LAB[b, cell], YM[b, cell], XM[b, cell]
			n++
			PX[n] = x; PY[n] = y; PL[n] = lab; PK[n] = j == 0; PR[n] = x > x0 + pw * 0.6
		}
		# Labels beside their points, pushed apart (at least 10 px) within each side, with a leader line.
		for (side = 0; side <= 1; side++) {
			m = 0
			for (q = 1; q <= n; q++) if (PR[q] == side) O[++m] = q
			for (q = 2; q <= m; q++) { t = O[q]; for (r = q - 1; r >= 1 && PY[O[r]] > PY[t]; r--) O[r + 1] = O[r]; O[r + 1] = t }
			last = -1e9
			for (q = 1; q <= m; q++) {
				t = O[q]
				ly = PY[t] + 3
				if (ly < last + 10) ly = last + 10
				last = ly
				lx = side ? PX[t] - 14 : PX[t] + 14
				if (ly - 3 - PY[t] > 3)
					printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-width=\"0.6\"/>\n", PX[t], PY[t], side ? lx + 2 : lx - 2, ly - 3
				printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\"%s%s>%s</text>\n", lx, ly, side ? " text-anchor=\"end\"" : "", PK[t] ? " fill=\"#d62728\" font-weight=\"bold\"" : "", PL[t]
			}
		}
	}
	print "</svg>"
}
