#!/usr/bin/env bash
# Compiles Token.sol with npm's solc (a pinned version) into Token.abi and Token.bin, which
# are committed: tests and the erc20flows demo deploy the token without a compiler. Run it
# again only when Token.sol changes.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent solc@0.8.26 >/dev/null)
node - "$work" <<'JS'
const path = require('path');
const fs = require('fs');
const solc = require(path.join(process.argv[2], 'node_modules', 'solc'));
const input = {
  language: 'Solidity',
  sources: { 'Token.sol': { content: fs.readFileSync('Token.sol', 'utf8') } },
  settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errs = (out.errors || []).filter(e => e.severity === 'error');
if (errs.length) { console.error(errs.map(e => e.formattedMessage).join('\n')); process.exit(1); }
const c = out.contracts['Token.sol'].Token;
fs.writeFileSync('Token.abi', JSON.stringify(c.abi) + '\n');
fs.writeFileSync('Token.bin', c.evm.bytecode.object + '\n');
console.log('solc', solc.version(), '-> Token.abi, Token.bin');
JS
