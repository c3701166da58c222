# SPDX-License-Identifier: GPL-2.0-or-later
# chart.awk — the SVG chart of tests/bench/bench.sh, built by hand (no gnuplot, no python).
#
#   awk -F, -f chart.awk meta.csv summary.csv > chart.svg
#
# Grouped bars: one group per backend, one bar per configuration (kvm-launch's built-in policy first, highlighted,
# then every cache/aio cell QEMU accepted), height = median over the rounds of the per-boot geometric mean of
# randread QD8 and randwrite QD8 IOPS, whisker = min-max.  Under a bar: L = libvirt's default, N = nova's,
# P = Proxmox VE's (P* its LVM-storage exception) on that backend.  Plain POSIX awk.

function color(cell) {
	if (cell == "kvm-launch") return "#d62728"
	if (cell == "none/threads") return "#9ecae1"
	if (cell == "none/native") return "#4292c6"
	if (cell == "none/io_uring") return "#08519c"
	if (cell == "writeback/threads") return "#a1d99b"
	if (cell == "writeback/io_uring") return "#238b45"
	if (cell == "writethrough/threads") return "#bcbddc"
	if (cell == "writethrough/io_uring") return "#756bb1"
	if (cell == "directsync/threads") return "#d9d9d9"
	if (cell == "directsync/native") return "#969696"
	if (cell == "directsync/io_uring") return "#525252"
	return "#bbbbbb"
}

function kfmt(v) {
	if (v >= 10000) return sprintf("%.0fk", v / 1000)
	if (v >= 1000) return sprintf("%.1fk", v / 1000)
	return sprintf("%.0f", v)
}

BEGIN {
	ncells = split("none/threads none/native none/io_uring writeback/threads writeback/native writeback/io_uring " \
		"writethrough/threads writethrough/native writethrough/io_uring directsync/threads directsync/native " \
		"directsync/io_uring", CELL, " ")
}

FNR == 1 { next }

FILENAME == ARGV[1] {
	if ($1 == "backend") BORDER[++nb] = $2
	else if ($1 == "decision") DCELL[$2] = $3 "/" $4
	else if ($1 == "label") LAB[$2, $3 "/" $4] = (LAB[$2, $3 "/" $4] != "" ? LAB[$2, $3 "/" $4] "; " : "") $5
	next
}

$6 == "guest" && $7 == "geomean_qd8" {
	cell = $2 == "kvm-launch" ? "kvm-launch" : $3 "/" $4
	MED[$1, cell] = $9; MIN[$1, cell] = $10; MAX[$1, cell] = $11; N[$1, cell] = $8
	if ($2 == "kvm-launch") KCELL[$1] = $3 "/" $4
	if ($11 > ymax) ymax = $11
	USED[cell] = 1
	if ($8 > rounds) rounds = $8
}

END {
	if (ymax <= 0) ymax = 1
	# a round axis: 1, 2 or 5 times a power of ten, about five ticks
	raw = ymax / 5
	p10 = 1
	while (p10 * 10 <= raw) p10 *= 10
	step = raw <= p10 ? p10 : raw <= 2 * p10 ? 2 * p10 : raw <= 5 * p10 ? 5 * p10 : 10 * p10
	top = step * int((ymax + step - 1e-9) / step)
	if (top < ymax) top += step

	gap = 30; left = 72; ptop = 84; ph = 330
	# bar width: fill about 900 px, 14 to 36 px a bar
	total = 0
	for (i = 1; i <= nb; i++) {
		if ((BORDER[i] SUBSEP "kvm-launch") in MED) total++
		for (j = 1; j <= ncells; j++) if ((BORDER[i] SUBSEP CELL[j]) in MED) total++
	}
	bw = total > 0 ? int((900 - nb * gap) / total) : 14
	if (bw < 14) bw = 14
	if (bw > 36) bw = 36
	x = left + gap / 2
	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		n = 0
		if ((b SUBSEP "kvm-launch") in MED) n++
		for (j = 1; j <= ncells; j++) if ((b SUBSEP CELL[j]) in MED) n++
		GX[i] = x; GN[i] = n
		x += n * bw + gap
	}
	width = x + 20
	if (width < 1000) width = 1000
	height = ptop + ph + 94 + 100

	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", width, height, width, height
	printf "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height
	printf "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">kvm-launch bench: geomean(randread QD8, randwrite QD8) IOPS in a TCG guest</text>\n", left
	printf "<text x=\"%d\" y=\"44\" font-size=\"12\" fill=\"#444\">median of %d round(s), whiskers min-max. Red, outlined: kvm-launch's built-in policy, launched through kvm-launch.</text>\n", left, rounds
	printf "<text x=\"%d\" y=\"60\" font-size=\"12\" fill=\"#444\">Under a bar, the defaults of: L libvirt (no cache/io given), N nova, P Proxmox VE (P* its LVM storage); a red = marks the cell kvm-launch chose.</text>\n", left
	# axis and grid
	for (v = 0; v <= top + 1e-9; v += step) {
		y = ptop + ph - ph * v / top
		printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, width - 20, y
		printf "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%s</text>\n", left - 6, y + 4, kfmt(v)
	}
	printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, ptop, left, ptop + ph
	printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, ptop + ph, width - 20, ptop + ph
	printf "<text x=\"16\" y=\"%d\" font-size=\"12\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">IOPS (geometric mean)</text>\n", ptop + ph / 2, ptop + ph / 2

	for (i = 1; i <= nb; i++) {
		b = BORDER[i]
		x = GX[i]
		best = 0
		for (j = 1; j <= ncells; j++) if ((b SUBSEP CELL[j]) in MED && MED[b, CELL[j]] > best) { best = MED[b, CELL[j]]; bestc = CELL[j] }
		for (j = 0; j <= ncells; j++) {
			cell = j == 0 ? "kvm-launch" : CELL[j]
			if (!((b SUBSEP cell) in MED)) continue
			h = ph * MED[b, cell] / top
			y = ptop + ph - h
			title = (j == 0 ? "kvm-launch built-in policy: " KCELL[b] : cell (LAB[b, cell] != "" ? " (" LAB[b, cell] ")" : "")) \
				sprintf(": median %.0f, min %.0f, max %.0f, n %d", MED[b, cell], MIN[b, cell], MAX[b, cell], N[b, cell])
			printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"%s><title>%s: %s</title></rect>\n",
				x + 1, y, bw - 2, h, color(cell), j == 0 ? " stroke=\"black\" stroke-width=\"2\"" : "", b, title
			y1 = ptop + ph - ph * MIN[b, cell] / top
			y2 = ptop + ph - ph * MAX[b, cell] / top
			printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" stroke-width=\"1\"/>\n", x + bw / 2, y1, x + bw / 2, y2
			printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>\n", x + 4, y2, x + bw - 4, y2
			if (j == 0 || cell == bestc)
				printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\"%s>%s</text>\n", x + bw / 2, y2 - 4,
					j == 0 ? " fill=\"#d62728\" font-weight=\"bold\"" : "", kfmt(MED[b, cell])
			if (j > 0 && cell == KCELL[b])
				printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\" fill=\"#d62728\">=</text>\n", x + bw / 2, ptop + ph + 12
			nm = j > 0 ? split(mark(b, cell), mk, " ") : 0
			for (q = 1; q <= nm; q++)
				printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n", x + bw / 2, ptop + ph + 13 + 11 * q, mk[q]
			x += bw
		}
		printf "<text x=\"%.1f\" y=\"%d\" font-size=\"13\" font-weight=\"bold\" text-anchor=\"middle\">%s</text>\n", GX[i] + GN[i] * bw / 2, ptop + ph + 62, b
		printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\" fill=\"#d62728\">kvm-launch: %s</text>\n", GX[i] + GN[i] * bw / 2, ptop + ph + 76, KCELL[b]
	}

	# legend
	lx = left; ly = ptop + ph + 94; col = 0
	for (j = 0; j <= ncells; j++) {
		cell = j == 0 ? "kvm-launch" : CELL[j]
		if (!(cell in USED)) continue
		printf "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"%s/>\n", lx, ly, color(cell), j == 0 ? " stroke=\"black\" stroke-width=\"2\"" : ""
		printf "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", lx + 16, ly + 10, j == 0 ? "kvm-launch built-in policy" : cell
		lx += 180; col++
		if (col == 4) { col = 0; lx = left; ly += 18 }
	}
	printf "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#444\">other bars: cache/aio given to plain QEMU (native without O_DIRECT, i.e. with writeback or writethrough, is refused by QEMU)</text>\n", left, ly + 34
	print "</svg>"
}
