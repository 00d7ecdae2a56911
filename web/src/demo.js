// `?demo=1` (or `?demo=screen`): the in-call screen filled with made-up
// participants and captions, with no server. It exists to look at the layout
// (screenshots, design review); it never joins anything.

import { t } from './i18n.js';

const PEOPLE = [
  { identity: '@camille.martin:demo.gouv.fr', name: 'Camille Martin', colour: '#5770be', video: true },
  { identity: '@karim.benali:demo.gouv.fr', name: 'Karim Benali', colour: '#169b62', video: true },
  { identity: '@sophie.lefebvre:demo.gouv.fr', name: 'Sophie Lefebvre', colour: '#a94645', video: false },
  { identity: '@jean.dupont:demo.gouv.fr', name: 'Jean Dupont', colour: '#c3992a', video: true },
  { identity: '@lea.nguyen:demo.gouv.fr', name: 'Léa Nguyen', colour: '#7d4e5b', video: false },
];

const CAPTIONS = {
  fr: [
    ['@camille.martin:demo.gouv.fr', 'Bonjour à tous, merci d’être là. On commence par le point sur le budget.', true],
    ['@karim.benali:demo.gouv.fr', 'Les crédits du deuxième semestre sont confirmés, je vous envoie le tableau après la réunion.', true],
    ['@sophie.lefebvre:demo.gouv.fr', 'Parfait. Il faudra valider le calendrier avec la direction avant vendredi.', true],
    ['@camille.martin:demo.gouv.fr', 'Je m’en occupe, et je propose qu’on fasse', false],
  ],
  en: [
    ['@camille.martin:demo.gouv.fr', 'Hello everyone, thanks for coming. Let’s start with the budget.', true],
    ['@karim.benali:demo.gouv.fr', 'The second-half funding is confirmed, I will send the table after the meeting.', true],
    ['@sophie.lefebvre:demo.gouv.fr', 'Good. We need the directors to approve the schedule before Friday.', true],
    ['@camille.martin:demo.gouv.fr', 'I will take care of it, and I suggest we', false],
  ],
};

/** A canvas "camera": a soft background and a head-and-shoulders outline, as an attachable track. */
function paintedTrack(colour, label) {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 360;
  const g = canvas.getContext('2d');
  const paint = () => {
    const gradient = g.createLinearGradient(0, 0, 640, 360);
    gradient.addColorStop(0, '#e8e6e1');
    gradient.addColorStop(1, '#c9c5bc');
    g.fillStyle = gradient;
    g.fillRect(0, 0, 640, 360);
    g.fillStyle = 'rgba(255,255,255,0.35)';
    g.fillRect(420, 40, 160, 110);
    g.fillStyle = colour;
    g.beginPath();
    g.ellipse(320, 380, 150, 120, 0, Math.PI, 0);
    g.fill();
    g.fillStyle = '#d9b38c';
    g.beginPath();
    g.arc(320, 170, 62, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = '#4a3728';
    g.beginPath();
    g.arc(320, 150, 64, Math.PI, 0);
    g.fill();
    g.font = '14px system-ui';
    g.fillStyle = 'rgba(0,0,0,0.25)';
    g.fillText(label, 16, 28);
  };
  paint();
  const stream = canvas.captureStream(5);
  setInterval(paint, 1000);
  return {
    attach(element) {
      element.srcObject = stream;
    },
    detach(element) {
      element.srcObject = null;
    },
  };
}

/** A canvas "screen share": a slide with a title and a few bullets. */
function paintedScreen() {
  const canvas = document.createElement('canvas');
  canvas.width = 1280;
  canvas.height = 720;
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, 1280, 720);
  g.fillStyle = '#000091';
  g.fillRect(0, 0, 1280, 110);
  g.fillStyle = '#ffffff';
  g.font = 'bold 44px system-ui';
  g.fillText('Plan de transformation 2027', 60, 72);
  g.fillStyle = '#161616';
  g.font = '32px system-ui';
  ['Calendrier des déploiements', 'Budget et moyens humains', 'Accompagnement des agents', 'Indicateurs de suivi'].forEach((line, i) => {
    g.fillStyle = '#000091';
    g.fillRect(80, 190 + i * 90, 14, 14);
    g.fillStyle = '#161616';
    g.fillText(line, 120, 205 + i * 90);
  });
  const stream = canvas.captureStream(1);
  return { attach: (el) => { el.srcObject = stream; }, detach: (el) => { el.srcObject = null; } };
}

/**
 * Fills the call view; returns the hooks the page's controls use:
 * `{participants(), captions(), toggleMic(), toggleCamera(), toggleScreen(), state()}`.
 */
export async function startDemo(view, lang, kind) {
  let localCamera = null;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    localCamera = { attach: (el) => { el.srcObject = stream; }, detach: (el) => { el.srcObject = null; } };
  } catch {
    localCamera = paintedTrack('#000091', '');
  }
  const me = { identity: '@vous:demo.gouv.fr', name: lang === 'fr' ? 'Claire Moreau' : 'Claire Moreau', local: true, speaking: false, micMuted: false, camera: localCamera, screen: null };
  const others = PEOPLE.slice(0, kind === 'screen' ? 3 : PEOPLE.length).map((p, i) => ({
    identity: p.identity,
    name: p.name,
    local: false,
    speaking: i === 0,
    micMuted: i === 2 || i === 4,
    camera: p.video ? paintedTrack(p.colour, '') : null,
    screen: kind === 'screen' && i === 1 ? paintedScreen() : null,
  }));
  const everyone = [me, ...others];
  const state = { mic: true, camera: true, screen: false };
  const render = () => {
    me.micMuted = !state.mic;
    me.camera = state.camera ? localCamera : null;
    view.render(everyone);
  };
  render();
  const names = new Map(everyone.map((p) => [p.identity, p.name]));
  const captions = CAPTIONS[lang] || CAPTIONS.fr;
  const shown = captions.map(([identity, text, final], i) => ({ id: `demo-${i}`, identity, speaker: names.get(identity), text, final }));
  shown.forEach((c) => view.caption(c));
  document.title = t('app.title');
  return {
    participants: () => everyone.map((p) => p.identity),
    captions: () => shown.map((c) => ({ ...c })),
    state: () => ({ ...state }),
    toggleMic: async () => { state.mic = !state.mic; render(); },
    toggleCamera: async () => { state.camera = !state.camera; render(); },
    toggleScreen: async () => { state.screen = !state.screen; render(); },
  };
}
