// The in-call screen: a grid of participant tiles (video or initials, name,
// muted and speaking marks), screen shares as wide tiles, the captions panel
// and the header's count. It is fed plain participant descriptions, so the
// LiveKit room (room.js) and the screenshot demo (demo.js) drive it alike.
// A "track" here is anything with `attach(videoElement)` / `detach(videoElement)`,
// which LiveKit's tracks are.

import { t } from './i18n.js';

const MAX_CAPTIONS = 60;

function initials(name) {
  const words = String(name || '?').replace(/^@/, '').split(/[\s._:-]+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

function svgIcon(id, className = 'icon') {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', className);
  svg.setAttribute('aria-hidden', 'true');
  const use = document.createElementNS(ns, 'use');
  use.setAttribute('href', `#${id}`);
  svg.append(use);
  return svg;
}

/**
 * Picks the number of grid columns for `count` 16:9 tiles in a `width`×`height`
 * box: the largest tiles win, and a wider layout wins a near tie (side by side
 * reads better than stacked).
 */
export function gridColumns(count, width, height, gap = 0) {
  if (count <= 1) return 1;
  let best = count;
  let bestArea = 0;
  for (let cols = count; cols >= 1; cols -= 1) {
    const rows = Math.ceil(count / cols);
    const tileWidth = Math.min((width - gap * (cols - 1)) / cols, (((height - gap * (rows - 1)) / rows) * 16) / 9);
    const area = tileWidth * tileWidth;
    if (area > bestArea * 1.1) {
      bestArea = area;
      best = cols;
    }
  }
  return best;
}

class Tile {
  constructor(key, screen) {
    this.key = key;
    this.track = null;
    this.element = document.createElement('li');
    this.element.className = screen ? 'tile tile-screen' : 'tile';
    this.element.dataset.key = key;
    this.video = document.createElement('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true;
    this.video.hidden = true;
    this.avatar = document.createElement('div');
    this.avatar.className = 'avatar';
    this.avatar.setAttribute('aria-hidden', 'true');
    const plate = document.createElement('div');
    plate.className = 'nameplate';
    this.mutedIcon = svgIcon('i-mic-off', 'icon muted-icon');
    this.mutedLabel = document.createElement('span');
    this.mutedLabel.className = 'visually-hidden';
    this.mutedLabel.textContent = t('call.muted');
    this.name = document.createElement('span');
    this.name.className = 'name';
    this.bars = document.createElement('span');
    this.bars.className = 'speaking-bars';
    this.bars.setAttribute('aria-hidden', 'true');
    this.bars.append(document.createElement('span'), document.createElement('span'), document.createElement('span'));
    this.speakingLabel = document.createElement('span');
    this.speakingLabel.className = 'visually-hidden';
    plate.append(this.bars, this.name, this.mutedIcon, this.mutedLabel, this.speakingLabel);
    this.element.append(this.video, this.avatar, plate);
  }

  setTrack(track) {
    if (track === this.track) return;
    if (this.track) this.track.detach(this.video);
    this.track = track;
    if (track) {
      track.attach(this.video);
      this.video.play?.().catch(() => {});
    }
    this.video.hidden = !track;
    this.avatar.hidden = !!track;
  }

  update({ label, name, local, speaking, micMuted }) {
    this.name.textContent = label;
    this.avatar.textContent = initials(name);
    this.element.classList.toggle('local', !!local);
    this.element.classList.toggle('speaking', !!speaking);
    this.element.dataset.speaking = speaking ? 'true' : 'false';
    this.speakingLabel.textContent = speaking ? `, ${t('call.speaking')}` : '';
    this.mutedIcon.style.display = micMuted ? '' : 'none';
    this.mutedLabel.textContent = micMuted ? `, ${t('call.muted')}` : '';
  }

  /** Moderators' buttons on another participant's tile; `onAct(action)` on a click. Null removes them. */
  setActions(name, onAct) {
    if (!onAct) {
      this.actions?.remove();
      this.actions = null;
      return;
    }
    if (!this.actions) {
      this.actions = document.createElement('div');
      this.actions.className = 'tile-actions';
      for (const [action, key] of [['mute', 'moderation.mute'], ['stop_video', 'moderation.stop.video'], ['remove', 'moderation.remove']]) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = `tile-action tile-action-${action.replace('_', '-')}`;
        button.dataset.action = action;
        button.textContent = t(key);
        button.addEventListener('click', () => this.onAct?.(action));
        this.actions.append(button);
      }
      this.element.append(this.actions);
    }
    this.onAct = onAct;
    for (const button of this.actions.children) {
      const key = { mute: 'moderation.mute.of', stop_video: 'moderation.stop.video.of', remove: 'moderation.remove.of' }[button.dataset.action];
      button.setAttribute('aria-label', t(key, { name }));
    }
  }

  remove() {
    this.setTrack(null);
    this.element.remove();
  }
}

export class CallView {
  constructor(doc = document) {
    this.grid = doc.getElementById('grid');
    this.count = doc.getElementById('participant-count');
    this.captionsList = doc.getElementById('captions-list');
    this.captionsLive = doc.getElementById('captions-live');
    this.tiles = new Map();
    this.captionItems = new Map();
    this.captionOrder = [];
    /** Set for moderators: `(action, identity)` acts on a participant. */
    this.onModerate = null;
    this.resize = new ResizeObserver(() => this.layout());
    this.resize.observe(this.grid);
  }

  /**
   * Shows `participants`, in order: `[{identity, name, local, speaking, micMuted, camera, screen}]`,
   * where `camera` and `screen` are attachable tracks or null.
   */
  render(participants) {
    const seen = new Set();
    const ordered = [];
    for (const p of participants) {
      if (p.screen) {
        const key = `${p.identity}#screen`;
        ordered.push(this.tile(key, true, seen));
        const tile = this.tiles.get(key);
        tile.setTrack(p.screen);
        tile.update({ label: t('call.screen.of', { name: p.name }), name: p.name, local: p.local, speaking: false, micMuted: false });
        tile.element.dataset.identity = p.identity;
      }
    }
    for (const p of participants) {
      const tile = this.tile(p.identity, false, seen);
      ordered.push(tile);
      tile.setTrack(p.camera || null);
      tile.update({ label: p.local ? `${p.name} ${t('call.you')}` : p.name, name: p.name, local: p.local, speaking: p.speaking, micMuted: p.micMuted });
      tile.element.dataset.identity = p.identity;
      const onModerate = this.onModerate;
      tile.setActions(p.name, !p.local && onModerate ? (action) => onModerate(action, p.identity) : null);
    }
    for (const [key, tile] of this.tiles) {
      if (!seen.has(key)) {
        tile.remove();
        this.tiles.delete(key);
      }
    }
    ordered.forEach((tile, index) => {
      if (this.grid.children[index] !== tile.element) this.grid.insertBefore(tile.element, this.grid.children[index] || null);
    });
    this.grid.dataset.count = String(ordered.length);
    this.count.hidden = false;
    this.count.textContent = t(participants.length === 1 ? 'call.participants.one' : 'call.participants', { n: participants.length });
    this.layout();
  }

  tile(key, screen, seen) {
    seen.add(key);
    let tile = this.tiles.get(key);
    if (!tile) {
      tile = new Tile(key, screen);
      this.tiles.set(key, tile);
    }
    return tile;
  }

  layout() {
    const tiles = [...this.grid.children];
    const main = tiles.find((tile) => tile.classList.contains('tile-screen'));
    tiles.forEach((tile) => tile.classList.toggle('tile-main', tile === main));
    this.grid.classList.toggle('presenting', !!main);
    if (main) {
      this.grid.style.setProperty('--others', String(Math.max(1, tiles.length - 1)));
      return;
    }
    // Equal 16:9 tiles, as large as the stage allows; rows wrap and centre.
    const gap = 12;
    const box = this.grid.getBoundingClientRect();
    const width = box.width || window.innerWidth;
    const height = box.height || window.innerHeight;
    const count = Math.max(1, tiles.length);
    const cols = gridColumns(count, width, height, gap);
    const rows = Math.ceil(count / cols);
    const cellWidth = (width - gap * (cols - 1)) / cols;
    const cellHeight = (height - gap * (rows - 1)) / rows;
    let tileWidth = Math.floor(Math.min(cellWidth, (cellHeight * 16) / 9));
    // On a small screen with many people, keep tiles readable and let the grid scroll.
    if ((tileWidth * 9) / 16 < 96) tileWidth = Math.floor(Math.min(width, 170.7));
    this.grid.style.setProperty('--grid-gap', `${gap}px`);
    this.grid.style.setProperty('--tile-w', `${tileWidth}px`);
    this.grid.style.setProperty('--tile-h', `${Math.floor((tileWidth * 9) / 16)}px`);
  }

  /** Adds or updates one caption segment: `{id, speaker, text, final}`; partial text is replaced by its final. */
  caption({ id, speaker, text, final }) {
    let item = this.captionItems.get(id);
    if (!item) {
      item = document.createElement('li');
      item.className = 'caption';
      const who = document.createElement('span');
      who.className = 'caption-speaker';
      const what = document.createElement('span');
      what.className = 'caption-text';
      item.append(who, what);
      this.captionItems.set(id, item);
      this.captionOrder.push(id);
      this.captionsList.append(item);
      while (this.captionOrder.length > MAX_CAPTIONS) {
        const old = this.captionOrder.shift();
        this.captionItems.get(old)?.remove();
        this.captionItems.delete(old);
      }
    }
    item.children[0].textContent = speaker;
    item.children[1].textContent = text;
    item.classList.toggle('partial', !final);
    if (final) this.captionsLive.textContent = t('call.caption.line', { speaker, text });
    const nearBottom = this.captionsList.scrollHeight - this.captionsList.scrollTop - this.captionsList.clientHeight < 80;
    if (nearBottom) this.captionsList.scrollTop = this.captionsList.scrollHeight;
  }

  clear() {
    for (const tile of this.tiles.values()) tile.remove();
    this.tiles.clear();
    this.captionItems.clear();
    this.captionOrder = [];
    this.captionsList.replaceChildren();
    this.count.hidden = true;
  }
}
