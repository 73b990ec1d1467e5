/**
 * No Docker engine runs here, so the compose stack is checked as a document: its services must
 * name each other consistently, and what its commands and the Dockerfile name must exist.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildProgram } from '../src/cli/main';
import { ENV_VARIABLES } from '../src/config';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The environment names rotor reads: src/config.ts's list, the only module that reads any. */
const ROTOR_ENV = new Set<string>(ENV_VARIABLES.map((v) => v.name));

const ROTOR_SERVICES = ['rotor-migrate', 'rotor-worker', 'rotor-serve'];

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | null> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  secrets?: Array<string | { source: string }>;
  volumes?: Array<string | { source?: string }>;
  ports?: string[];
  healthcheck?: { test: string[] | string };
  profiles?: string[];
}

interface ComposeFile {
  services: Record<string, Service>;
  secrets?: Record<string, { file?: string }>;
  volumes?: Record<string, unknown>;
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as ComposeFile;
const services = compose.services;
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

/** Compose interpolation as `docker compose config` does it with nothing set: defaults win. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}/g, (_m, _name, op, rest) =>
    op === '-' ? rest : 'set-by-operator',
  );
}

function env(service: Service): Record<string, string> {
  const raw = service.environment ?? {};
  const entries = Array.isArray(raw)
    ? raw.map((line) => {
        const i = line.indexOf('=');
        return [line.slice(0, i), line.slice(i + 1)] as const;
      })
    : Object.entries(raw).map(([k, v]) => [k, v === null ? '' : String(v)] as const);
  return Object.fromEntries(entries.map(([k, v]) => [k, interpolate(v)]));
}

function dependsOn(service: Service): string[] {
  const d = service.depends_on ?? [];
  return Array.isArray(d) ? d : Object.keys(d);
}

function argv(value: string[] | string | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : value.split(/\s+/);
}

function hostPort(address: string): { host: string; port: string } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: address.slice(i + 1) };
}

/** `dist/x.js` is built from `src/x.ts` (`npm run build`), which a checkout has; other paths as they are. */
function sourceOf(path: string): string {
  return path.startsWith('dist/') ? path.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts') : path;
}

/** JSON-array (exec form) instructions of the Dockerfile, e.g. CMD and ENTRYPOINT. */
function execForm(instruction: string): string[][] {
  const re = new RegExp(`^${instruction}\\s+(\\[.*\\])\\s*$`, 'gm');
  return [...dockerfile.matchAll(re)].map((m) => JSON.parse(m[1]!) as string[]);
}

describe('docker-compose.yml', () => {
  it('defines the stack the README describes', () => {
    for (const name of ['postgres', 'temporal', 'temporal-ui', ...ROTOR_SERVICES]) {
      expect(services[name], `service ${name}`).toBeDefined();
    }
    expect(services.postgres!.image).toMatch(/^postgres:16/);
    expect(services.postgres!.healthcheck?.test).toBeDefined();
    expect(services.temporal!.image).toMatch(/^temporalio\/(auto-setup|server):\d+\.\d+\.\d+$/);
    expect(services['temporal-ui']!.image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
  });

  it('has every service built from the Dockerfile or pulled by a pinned image', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.image ?? s.build, `service ${name} has neither image nor build`).toBeDefined();
      if (s.image && !s.build) expect(s.image, `service ${name} pins its image`).toMatch(/:[\w.-]+$/);
      if (s.build) {
        const context = typeof s.build === 'string' ? s.build : (s.build.context ?? '.');
        const file = typeof s.build === 'string' ? 'Dockerfile' : (s.build.dockerfile ?? 'Dockerfile');
        expect(existsSync(join(ROOT, context, file)), `service ${name} builds ${context}/${file}`).toBe(true);
      }
    }
  });

  it('has every depends_on name a defined service, with a condition compose knows', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const dep of dependsOn(s)) {
        expect(services[dep], `${name} depends on undefined service ${dep}`).toBeDefined();
        expect(dep).not.toBe(name);
      }
      if (s.depends_on && !Array.isArray(s.depends_on)) {
        for (const [dep, spec] of Object.entries(s.depends_on)) {
          expect(
            ['service_started', 'service_healthy', 'service_completed_successfully'],
            `${name} → ${dep}`,
          ).toContain(spec.condition);
          if (spec.condition === 'service_healthy') expect(services[dep]!.healthcheck, dep).toBeDefined();
        }
      }
    }
    // Migrations finish before anything that uses the schema starts.
    for (const name of ['rotor-worker', 'rotor-serve']) {
      const d = services[name]!.depends_on as Record<string, { condition?: string }>;
      expect(d['rotor-migrate']?.condition).toBe('service_completed_successfully');
    }
    expect(
      (services['rotor-migrate']!.depends_on as Record<string, { condition?: string }>).postgres?.condition,
    ).toBe('service_healthy');
  });

  it('points every DATABASE_URL at the postgres service, with its credentials', () => {
    const pg = env(services.postgres!);
    let seen = 0;
    for (const [name, s] of Object.entries(services)) {
      const url = env(s).DATABASE_URL;
      if (url === undefined) continue;
      seen++;
      const u = new URL(url);
      expect(u.protocol, name).toBe('postgres:');
      expect(u.hostname, name).toBe('postgres');
      expect(u.port || '5432', name).toBe('5432');
      // The worker and rotor serve log in as their least-privilege roles (migration 085), whose
      // passwords rotor-migrate sets; everything else is the database's owner.
      const role = { 'rotor-worker': 'rotor_worker', 'rotor-serve': 'rotor_serve' }[name];
      if (role) {
        expect(decodeURIComponent(u.username), name).toBe(role);
        const variable = role === 'rotor_worker' ? 'ROTOR_WORKER_DB_PASSWORD' : 'ROTOR_SERVE_DB_PASSWORD';
        expect(decodeURIComponent(u.password), name).toBe(env(services['rotor-migrate']!)[variable]);
      } else {
        expect(decodeURIComponent(u.username), name).toBe(pg.POSTGRES_USER);
        expect(decodeURIComponent(u.password), name).toBe(pg.POSTGRES_PASSWORD);
      }
      expect(u.pathname, name).toBe(`/${pg.POSTGRES_DB}`);
    }
    expect(seen).toBeGreaterThanOrEqual(ROTOR_SERVICES.length);
    for (const name of ROTOR_SERVICES) expect(env(services[name]!).DATABASE_URL, name).toBeDefined();
  });

  it("gives Temporal the postgres service for persistence and everyone Temporal's address", () => {
    const t = env(services.temporal!);
    expect(t.DB).toBe('postgres12');
    expect(t.POSTGRES_SEEDS).toBe('postgres');
    expect(t.POSTGRES_USER).toBe(env(services.postgres!).POSTGRES_USER);
    expect(t.POSTGRES_PWD).toBe(env(services.postgres!).POSTGRES_PASSWORD);
    expect(dependsOn(services.temporal!)).toContain('postgres');
    for (const [name, s] of Object.entries(services)) {
      const address = env(s).TEMPORAL_ADDRESS;
      if (address === undefined) continue;
      expect(hostPort(address), name).toEqual({ host: 'temporal', port: '7233' });
      if (name !== 'temporal') expect(dependsOn(s).length, `${name} waits for something`).toBeGreaterThan(0);
    }
    expect(env(services['rotor-worker']!).TEMPORAL_ADDRESS).toBeDefined();
    expect(env(services['temporal-ui']!).TEMPORAL_ADDRESS).toBeDefined();
  });

  it('uses only the environment names rotor reads, and never a PIN in the environment', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const key of Object.keys(env(s))) {
        if (key.startsWith('ROTOR_')) expect(ROTOR_ENV, `${name} sets unknown ${key}`).toContain(key);
      }
      expect(Object.keys(env(s)), name).not.toContain('ROTOR_PKCS11_PIN');
    }
    const worker = env(services['rotor-worker']!);
    expect(['software', 'pkcs11']).toContain(worker.ROTOR_CUSTODIAN);
    const serve = env(services['rotor-serve']!);
    // The shared fleet token is optional (one release, unregistered verifiers only): compose must
    // not make an operator invent one.
    expect(serve.ROTOR_CHECKIN_TOKEN ?? '').toBe('');
    expect(Number(serve.ROTOR_ANCHOR_MAX_AGE)).toBeGreaterThan(0);
  });

  it('hands the PKCS#11 PIN over as a docker secret the service mounts', () => {
    const worker = services['rotor-worker']!;
    const pinFile = env(worker).ROTOR_PKCS11_PIN_FILE!;
    const mounted = (worker.secrets ?? []).map((x) => (typeof x === 'string' ? x : x.source));
    const secret = /^\/run\/secrets\/([\w.-]+)$/.exec(pinFile)?.[1];
    expect(secret, pinFile).toBeDefined();
    expect(mounted).toContain(secret);
    for (const [name, s] of Object.entries(services)) {
      for (const x of s.secrets ?? []) {
        const source = typeof x === 'string' ? x : x.source;
        expect(compose.secrets?.[source], `${name} mounts undefined secret ${source}`).toBeDefined();
      }
    }
  });

  it('declares every named volume a service mounts', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const source = typeof v === 'string' ? v.split(':')[0]! : (v.source ?? '');
        if (/^[a-z0-9][\w.-]*$/i.test(source)) {
          expect(compose.volumes ?? {}, `${name} mounts undeclared volume ${source}`).toHaveProperty(source);
        }
      }
    }
    expect(services.postgres!.volumes?.some((v) => String(v).endsWith(':/var/lib/postgresql/data'))).toBe(
      true,
    );
  });

  it("points rotor's processes at the rotor-serve service for the HTTP endpoints", () => {
    const serve = env(services['rotor-serve']!);
    for (const name of ['rotor-worker', 'rotor-cli']) {
      const url = new URL(env(services[name]!).ROTOR_PUBLIC_URL!);
      expect(url.hostname, name).toBe('rotor-serve');
      expect(url.port, name).toBe(serve.ROTOR_HTTP_PORT);
      expect(env(services[name]!).ROTOR_CUSTODIAN, name).toBe(env(services['rotor-worker']!).ROTOR_CUSTODIAN);
    }
  });

  it('publishes each host port once, and rotor serve on the port it listens on', () => {
    // `[host ip:]host port:container port`
    const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => p.split(':').at(-2)));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    // Whoever reaches Temporal's frontend can start a compromise rotation: it and its UI stay on
    // the host's loopback (issue 12); only rotor serve is published to the network.
    expect(services.temporal!.ports).toEqual(['127.0.0.1:7233:7233']);
    expect(services['temporal-ui']!.ports).toEqual(['127.0.0.1:8233:8080']);
    const serve = services['rotor-serve']!;
    const containerPorts = (serve.ports ?? []).map((p) => p.split(':').at(-1));
    expect(containerPorts).toContain(env(serve).ROTOR_HTTP_PORT);
    expect(env(serve).ROTOR_HTTP_HOST).toBe('0.0.0.0');
  });

  it('runs commands whose files exist and rotor subcommands the CLI registers', () => {
    const program = buildProgram();
    const findCommand = (path: string[]) =>
      path.reduce<ReturnType<typeof buildProgram> | undefined>(
        (cmd, name) => cmd?.commands.find((c) => c.name() === name),
        program,
      );
    expect(argv(services['rotor-worker']!.command)).toEqual(['node', 'dist/worker.js']);
    expect(argv(services['rotor-serve']!.command)).toEqual(['node', 'bin/rotor.mjs', 'serve']);
    expect(argv(services['rotor-migrate']!.command)).toEqual(['node', 'bin/rotor.mjs', 'db', 'migrate']);
    for (const [name, s] of Object.entries(services)) {
      if (!s.build) continue;
      const args = [...argv(s.entrypoint), ...argv(s.command)];
      for (const arg of args.filter((a) => /\.(ts|mjs|js)$/.test(a))) {
        expect(existsSync(join(ROOT, sourceOf(arg))), `${name} runs ${arg}`).toBe(true);
      }
      const rotorAt = args.indexOf('bin/rotor.mjs');
      const sub = rotorAt >= 0 ? args.slice(rotorAt + 1).filter((a) => !a.startsWith('-')) : [];
      if (sub.length > 0) expect(findCommand(sub), `${name} runs rotor ${sub.join(' ')}`).toBeDefined();
    }
  });
});

describe('Dockerfile', () => {
  it('builds on node:20-bookworm-slim with softhsm2 and npm ci', () => {
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThan(0);
    for (const image of froms) expect(image).toBe('node:20-bookworm-slim');
    expect(dockerfile).toMatch(/apt-get install[^\n]*\\?\n?[^\n]*\bsofthsm2\b/);
    expect(dockerfile).toMatch(/\bnpm ci\b/);
  });

  it('runs as a non-root user', () => {
    const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0']).not.toContain(users.at(-1));
  });

  it('copies only what exists and runs files that exist', () => {
    const copies = [...dockerfile.matchAll(/^COPY\s+(?!--from)(?:--\S+\s+)*(.+)$/gm)];
    expect(copies.length).toBeGreaterThan(0);
    for (const m of copies) {
      const parts = m[1]!.trim().split(/\s+/);
      for (const src of parts.slice(0, -1)) expect(existsSync(join(ROOT, src)), `COPY ${src}`).toBe(true);
    }
    for (const cmd of [...execForm('CMD'), ...execForm('ENTRYPOINT')]) {
      for (const arg of cmd.filter((a) => /\.(ts|mjs|js)$/.test(a))) {
        expect(existsSync(join(ROOT, sourceOf(arg))), arg).toBe(true);
      }
    }
    // What the compose services run must be inside the image: the build stage compiles src/ and
    // the runtime stage takes dist/ from it, never the sources or tsx.
    expect(dockerfile).toMatch(/^COPY\s+.*\bsrc\b/m);
    expect(dockerfile).toMatch(/^RUN\s+npm run build\b/m);
    expect(dockerfile).toMatch(/^COPY\s+--from=build\s+.*\/app\/dist\b/m);
    expect(dockerfile).toMatch(/^COPY\s+.*\bbin\b/m);
  });

  it('keeps node_modules and secrets out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignored).toContain('node_modules');
    expect(ignored).toContain('secrets');
    expect(compose.secrets?.rotor_pkcs11_pin?.file).toMatch(/^\.\/secrets\//);
  });
});
