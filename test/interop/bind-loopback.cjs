'use strict';
// Preloaded with `node --require` in front of peers that call listen(port) with no
// host, which binds every interface (server-everything does). Tests must never expose
// a server beyond this machine, so every TCP listen is forced onto 127.0.0.1 whatever
// host the caller asked for; pipes, paths and inherited handles are left alone.
const net = require('node:net');

const LOOPBACK = '127.0.0.1';
const originalListen = net.Server.prototype.listen;

// Mirrors Node's own argument rules for listen(): a string that is not a number is a
// pipe name, an object carrying path/handle/fd is not a TCP port.
function isTCPPort(value) {
  if (value === undefined || value === null) return true;
  if (typeof value === 'number') return true;
  return typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value));
}

function isNonTCPOptions(options) {
  return options.path !== undefined || options.handle !== undefined ||
    options._handle !== undefined || options.fd !== undefined;
}

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  const first = args[0];
  let options;
  if (first !== null && typeof first === 'object') {
    if (isNonTCPOptions(first)) {
      return originalListen.apply(this, callback ? [...args, callback] : args);
    }
    options = { ...first, host: LOOPBACK };
  } else if (isTCPPort(first)) {
    options = { port: first === undefined || first === null ? 0 : Number(first), host: LOOPBACK };
    const backlog = typeof args[1] === 'number' ? args[1] : args[2];
    if (typeof backlog === 'number') options.backlog = backlog;
  } else {
    return originalListen.apply(this, callback ? [...args, callback] : args);
  }
  return callback ? originalListen.call(this, options, callback) : originalListen.call(this, options);
};
