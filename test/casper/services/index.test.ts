/**
 * The service registry, and the constants the services share with wasi-libc guests: checked
 * against wasi-libc's headers when they are installed (Debian's wasi-libc package).
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVICES } from '../../../src/casper/services/index.js';
import { AF } from '../../../src/casper/services/dns.js';
import { STAT_LAYOUT, WASI_LIBC_O_CREAT } from '../../../src/casper/services/fileargs.js';
import { CASPER_SERVICES } from '../../../src/manifest/parse.js';

describe('SERVICES', () => {
  it('has one service per name the manifest accepts, under its own name', () => {
    expect(Object.keys(SERVICES).sort()).toEqual([...CASPER_SERVICES].sort());
    for (const [name, s] of Object.entries(SERVICES)) expect(s.name).toBe(name);
  });

  it('reads the grant {} as "no limits" for every service', () => {
    for (const s of Object.values(SERVICES)) expect(s.fromManifest?.({}) ?? null).toBeNull();
  });

  it('gives every service but system.random a limit function', () => {
    expect(Object.entries(SERVICES).filter(([, s]) => !s.limit).map(([n]) => n)).toEqual(['system.random']);
  });
});

const HEADERS = '/usr/include/wasm32-wasi';
describe.skipIf(!fs.existsSync(`${HEADERS}/__header_sys_socket.h`))('wasi-libc agrees', () => {
  const define = (file: string, name: string): string | undefined =>
    new RegExp(`#define\\s+${name}\\s+(.+)`).exec(fs.readFileSync(`${HEADERS}/${file}`, 'utf8'))?.[1]?.trim();

  it('on AF_UNSPEC, AF_INET and AF_INET6', () => {
    expect(Number(define('__header_sys_socket.h', 'AF_UNSPEC'))).toBe(AF.UNSPEC);
    expect(Number(define('__header_sys_socket.h', 'AF_INET'))).toBe(AF.INET);
    expect(Number(define('__header_sys_socket.h', 'AF_INET6'))).toBe(AF.INET6);
  });

  it('on O_CREAT', () => {
    expect(define('__header_fcntl.h', 'O_CREAT')).toBe('(__WASI_OFLAGS_CREAT << 12)');
    expect(WASI_LIBC_O_CREAT).toBe(1 << 12);
  });

  it('on the members of struct stat', () => {
    const src = fs.readFileSync(`${HEADERS}/__struct_stat.h`, 'utf8');
    const members = [...src.matchAll(/\b(st_\w+);/g)].map((m) => m[1]);
    expect(members.slice(0, 13)).toEqual(['st_dev', 'st_ino', 'st_nlink', 'st_mode', 'st_uid', 'st_gid', 'st_rdev', 'st_size', 'st_blksize', 'st_blocks', 'st_atim', 'st_mtim', 'st_ctim']);
    expect(Object.keys(STAT_LAYOUT).filter((k) => k.startsWith('st_'))).toEqual(members.slice(0, 13));
  });
});
