# SPDX-License-Identifier: GPL-2.0-or-later
# marks.awk: the L / N / P / P* marks under a chart's cell, for chart.awk and memchart.awk (awk -f marks.awk -f ...).
# LAB[backend, cell] holds the cell's labels from meta.csv ("libvirt default; nova", ...).

function mark(b, cell,    s) {
	s = ""
	if (index("; " LAB[b, cell] ";", "; libvirt default;")) s = s " L"
	if (index("; " LAB[b, cell] ";", "; nova;")) s = s " N"
	if (index("; " LAB[b, cell] ";", "; Proxmox;")) s = s " P"
	if (index("; " LAB[b, cell] ";", "; Proxmox LVM;")) s = s " P*"
	return s
}
