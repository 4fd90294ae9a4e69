# Installation of pg-ha's programs, systemd units and example configuration.
# Included by the top-level Makefile; usable alone as well:
#
#   make install                          # into /usr, units in /usr/lib/systemd/system
#   make install PREFIX=/usr/local        # units in /usr/local/lib/systemd/system
#   make install DESTDIR=/tmp/stage       # staged, for packaging
#   make -f systemd/install.mk install PGHA_BUILD_DIR=out
#
# Targets: install (= install-programs install-units install-config),
# uninstall.
#
# Programs are taken from $(PGHA_BUILD_DIR) (./bin, where the top-level
# Makefile builds them). The units name /usr/bin/pg-* and
# /usr/share/doc/pg-ha; both are rewritten for PREFIX at install time. An
# existing /etc/pg-ha/example.yml is left alone. After installing into a live
# system, run `systemctl daemon-reload`.

# Do not let this file's first target become the including Makefile's
# default goal.
PGHA_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

PREFIX ?= /usr
DESTDIR ?=
PGHA_BUILD_DIR ?= bin
PGHA_BINDIR ?= $(PREFIX)/bin
PGHA_UNITDIR ?= $(PREFIX)/lib/systemd/system
PGHA_DOCDIR ?= $(PREFIX)/share/doc/pg-ha
PGHA_CONFDIR ?= /etc/pg-ha

PGHA_SYSTEMD_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
PGHA_PROGRAMS := pg-lockd pg-supervise pg-healthd pg-bootstrap pg-failover
PGHA_UNITS := $(notdir $(wildcard $(PGHA_SYSTEMD_DIR)/*.service $(PGHA_SYSTEMD_DIR)/*.socket \
	$(PGHA_SYSTEMD_DIR)/*.target $(PGHA_SYSTEMD_DIR)/*.timer))

# Paths as written in the unit files, and what they become.
PGHA_SED := -e 's|/usr/bin/pg-|$(PGHA_BINDIR)/pg-|g' -e 's|/usr/share/doc/pg-ha/|$(PGHA_DOCDIR)/|g' \
	-e 's|/etc/pg-ha/|$(PGHA_CONFDIR)/|g'

.PHONY: install install-programs install-units install-config uninstall

install: install-programs install-units install-config

install-programs:
	@for p in $(PGHA_PROGRAMS); do \
		test -x '$(PGHA_BUILD_DIR)'/$$p || { echo "install: $(PGHA_BUILD_DIR)/$$p is missing: build the programs first (make)" >&2; exit 1; }; \
	done
	install -d -m 0755 '$(DESTDIR)$(PGHA_BINDIR)'
	for p in $(PGHA_PROGRAMS); do install -m 0755 '$(PGHA_BUILD_DIR)'/$$p '$(DESTDIR)$(PGHA_BINDIR)'/$$p || exit 1; done

install-units:
	install -d -m 0755 '$(DESTDIR)$(PGHA_UNITDIR)' '$(DESTDIR)$(PGHA_DOCDIR)'
	for u in $(PGHA_UNITS); do \
		sed $(PGHA_SED) '$(PGHA_SYSTEMD_DIR)'/$$u > '$(DESTDIR)$(PGHA_UNITDIR)'/$$u.tmp && \
		chmod 0644 '$(DESTDIR)$(PGHA_UNITDIR)'/$$u.tmp && \
		mv -f '$(DESTDIR)$(PGHA_UNITDIR)'/$$u.tmp '$(DESTDIR)$(PGHA_UNITDIR)'/$$u || exit 1; \
	done
	install -m 0644 '$(PGHA_SYSTEMD_DIR)/README.md' '$(DESTDIR)$(PGHA_DOCDIR)/systemd.md'

# The configuration holds passwords: root:postgres 0640 (the group only
# when installing as root onto a system that has it). Never overwritten.
install-config:
	install -d -m 0755 '$(DESTDIR)$(PGHA_CONFDIR)'
	if [ -e '$(DESTDIR)$(PGHA_CONFDIR)/example.yml' ]; then \
		echo "install: keeping existing $(DESTDIR)$(PGHA_CONFDIR)/example.yml"; \
	else \
		install -m 0640 '$(PGHA_SYSTEMD_DIR)/pg-ha.example.yml' '$(DESTDIR)$(PGHA_CONFDIR)/example.yml' && \
		{ chgrp postgres '$(DESTDIR)$(PGHA_CONFDIR)/example.yml' 2>/dev/null || true; }; \
	fi

uninstall:
	for p in $(PGHA_PROGRAMS); do rm -f '$(DESTDIR)$(PGHA_BINDIR)'/$$p; done
	for u in $(PGHA_UNITS); do rm -f '$(DESTDIR)$(PGHA_UNITDIR)'/$$u; done
	rm -f '$(DESTDIR)$(PGHA_DOCDIR)/systemd.md'
	@echo "uninstall: $(PGHA_CONFDIR) left in place"

.DEFAULT_GOAL := $(PGHA_SAVED_DEFAULT_GOAL)
