# mk/install.mk — man pages and installation, included by the Makefile.
#
#   make man                                 man/*.scd -> build/man/*.1 *.8 (scdoc)
#   make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage] [UNITDIR=...]
#   make uninstall [PREFIX=...] [DESTDIR=...] [UNITDIR=...]
#
# install puts the three programs in $(BINDIR), the systemd units (with
# @bindir@ replaced by $(BINDIR)) in $(UNITDIR), the man pages in $(MANDIR),
# byolctl's bash completion in $(COMPLETIONDIR) and the example configs in
# $(DOCDIR)/examples. It never writes /etc: copy
# $(DOCDIR)/examples/byold.conf and worker.conf to /etc/byold/ yourself
# (deploy/README.md). uninstall removes exactly what install writes.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/byold
UNITDIR ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
SCDOC   ?= scdoc
INSTALL ?= install

MAN_SRCS  := $(wildcard man/*.scd)
MAN_PAGES := $(MAN_SRCS:man/%.scd=build/man/%)
UNITS     := byold.service byold.socket byol-worker@.service byol-worker-local@.service
EXAMPLES  := $(wildcard deploy/examples/*.ini) deploy/examples/byold.conf \
             deploy/examples/worker.conf
INSTALLED_PROGRAMS := byold byol-worker byolctl

man: $(MAN_PAGES)

build/man/%: man/%.scd
	@command -v $(SCDOC) >/dev/null || \
		{ echo "make man: $(SCDOC) is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
	@mkdir -p build/man
	$(SCDOC) <$< >$@.tmp && mv $@.tmp $@

install: $(PROGRAMS) $(MAN_PAGES)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(COMPLETIONDIR)
	$(INSTALL) -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	for u in $(UNITS); do \
		sed 's|@bindir@|$(BINDIR)|g' deploy/systemd/$$u >$(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m 644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -m 644 deploy/README.md $(DESTDIR)$(DOCDIR)/deploy.md
	$(INSTALL) -m 644 deploy/bash-completion/byolctl $(DESTDIR)$(COMPLETIONDIR)/byolctl

uninstall:
	rm -f $(INSTALLED_PROGRAMS:%=$(DESTDIR)$(BINDIR)/%)
	rm -f $(UNITS:%=$(DESTDIR)$(UNITDIR)/%)
	rm -f $(patsubst build/man/%,$(DESTDIR)$(MANDIR)/man1/%,$(filter %.1,$(MAN_PAGES)))
	rm -f $(patsubst build/man/%,$(DESTDIR)$(MANDIR)/man8/%,$(filter %.8,$(MAN_PAGES)))
	rm -f $(EXAMPLES:deploy/examples/%=$(DESTDIR)$(DOCDIR)/examples/%)
	rm -f $(DESTDIR)$(DOCDIR)/deploy.md
	rm -f $(DESTDIR)$(COMPLETIONDIR)/byolctl
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || true

.PHONY: man install uninstall
