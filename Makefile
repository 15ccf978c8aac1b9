# make binary   -> dist/pocketserver, the single-file executable (PyInstaller, in its own venv)
# make clean    -> remove the build venv and PyInstaller's output
# The venv and PyInstaller's work files live under dist/, which git ignores.
PYTHON ?= python3
VENV   ?= dist/.build-venv
WORK   ?= dist/.pyinstaller-work
SPEC   := build/pyinstaller.spec

.PHONY: binary clean

# Always rebuilt (20-40 s): the spec collects whatever pocketserver/ holds at build time.
binary: $(VENV)/.installed
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath $(WORK) $(SPEC)
	@ls -l dist/pocketserver
	@dist/pocketserver --version

# Reinstalled when pyproject.toml changes, so new dependencies (zeroconf, Pillow, ...) get in.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e . 'pyinstaller>=6'
	touch $@

clean:
	rm -rf $(VENV) $(WORK) dist/pocketserver
