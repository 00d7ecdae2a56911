// The call page's words, in French (the default: its users are French civil
// servants) and English (for a browser whose language is not French).
// `t(key, vars)` looks a key up in the page's language and fills `{name}`
// placeholders; `applyStaticText(root)` fills every `data-i18n*` attribute of
// the HTML template, so call.html carries no words of its own.

const fr = {
  'app.name': 'Salon',
  'app.tagline': 'Visioconférence',
  'app.title': 'Salon – Visioconférence',
  'app.skip': 'Aller au contenu',
  'loading': 'Chargement de l’appel…',

  'login.title': 'Connectez-vous pour rejoindre l’appel',
  'login.intro': 'Utilisez votre compte de messagerie ({server}). Seuls les membres du salon peuvent rejoindre cet appel.',
  'login.user': 'Identifiant',
  'login.user.hint': 'Par exemple : prenom.nom ou @prenom.nom:{server}',
  'login.password': 'Mot de passe',
  'login.submit': 'Se connecter',
  'login.busy': 'Connexion…',
  'login.or': 'ou',
  'login.sso': 'Se connecter avec {provider}',
  'login.sso.default': 'l’authentification unique',
  'login.failed': 'Identifiant ou mot de passe incorrect.',
  'login.rate': 'Trop de tentatives. Patientez quelques instants avant de réessayer.',
  'login.unreachable': 'Le serveur de messagerie ne répond pas. Vérifiez votre connexion et réessayez.',
  'login.missing': 'Saisissez votre identifiant et votre mot de passe.',
  'login.no.password': 'Ce serveur n’accepte pas la connexion par mot de passe.',

  'prejoin.title': 'Prêt à rejoindre ?',
  'prejoin.intro': 'Vérifiez votre micro et votre caméra avant d’entrer.',
  'prejoin.name': 'Votre nom dans l’appel',
  'prejoin.mic': 'Microphone',
  'prejoin.camera': 'Caméra',
  'prejoin.mic.level': 'Niveau du microphone',
  'prejoin.mic.on': 'Micro activé',
  'prejoin.mic.off': 'Micro coupé',
  'prejoin.cam.on': 'Caméra activée',
  'prejoin.cam.off': 'Caméra coupée',
  'prejoin.preview.off': 'Caméra désactivée',
  'prejoin.preview.label': 'Aperçu de votre caméra',
  'prejoin.join': 'Rejoindre l’appel',
  'prejoin.joining': 'Connexion à l’appel…',
  'prejoin.signed.as': 'Connecté en tant que {user}',
  'prejoin.logout': 'Changer de compte',
  'prejoin.no.device': 'Aucun appareil trouvé',
  'prejoin.device.default': 'Appareil {n}',
  'prejoin.denied': 'Le navigateur n’a pas l’autorisation d’utiliser le micro ou la caméra. Vous pouvez l’autoriser dans les réglages du site, ou rejoindre l’appel sans eux.',
  'prejoin.device.error': 'Impossible d’utiliser cet appareil : il est peut-être occupé par une autre application.',
  'prejoin.widget': 'Vous rejoignez depuis votre messagerie en tant que {user}.',
  'prejoin.guest': 'Vous rejoignez en invité, à l’invitation de {user}. Un modérateur vous fera entrer.',
  'lobby.title': 'Salle d’attente',
  'lobby.panel': 'Salle d’attente',
  'lobby.is.waiting': '{name} attend (invité par {user})',
  'lobby.admit': 'Faire entrer',
  'lobby.deny': 'Refuser',
  'moderation.mute': 'Couper le micro',
  'moderation.mute.of': 'Couper le micro de {name}',
  'moderation.stop.video': 'Arrêter la vidéo',
  'moderation.stop.video.of': 'Arrêter la caméra et le partage de {name}',
  'moderation.remove': 'Retirer',
  'moderation.remove.of': 'Retirer {name} de l’appel',
  'moderation.mute.all': 'Tout couper',
  'moderation.lock': 'Verrouiller',
  'moderation.refused': 'Action refusée : {reason}',
  'lobby.waiting': 'Un modérateur de l’appel va vous faire entrer. Invitation de {user}. Gardez cette page ouverte.',
  'error.guest.link': 'Ce lien d’invité ne fonctionne pas (ou plus). Demandez-en un nouveau à la personne qui vous a invité.',
  'error.denied': 'Un modérateur ne vous a pas fait entrer dans l’appel.',

  'transcription.on': 'La transcription est activée : ce qui est dit dans cet appel est retranscrit et publié dans le salon.',

  'call.participants': '{n} participants',
  'call.participants.one': '1 participant',
  'call.you': '(vous)',
  'call.mic.mute': 'Couper le micro',
  'call.mic.unmute': 'Activer le micro',
  'call.cam.off': 'Couper la caméra',
  'call.cam.on': 'Activer la caméra',
  'call.screen.start': 'Partager l’écran',
  'call.screen.stop': 'Arrêter le partage',
  'call.captions.show': 'Afficher les sous-titres',
  'call.captions.hide': 'Masquer les sous-titres',
  'call.leave': 'Quitter',
  'call.label.mic': 'Micro',
  'call.label.cam': 'Caméra',
  'call.label.screen': 'Écran',
  'call.label.captions': 'Sous-titres',
  'call.muted': 'Micro coupé',
  'call.speaking': 'parle',
  'call.screen.of': 'Écran de {name}',
  'call.captions': 'Sous-titres en direct',
  'call.caption.line': '{speaker} : {text}',
  'call.captions.empty': 'Les sous-titres apparaîtront ici dès que quelqu’un parlera.',
  'call.reconnecting': 'Connexion perdue, reconnexion en cours…',
  'call.audio.blocked': 'Le navigateur a bloqué le son de l’appel.',
  'call.audio.enable': 'Activer le son',
  'call.controls': 'Commandes de l’appel',
  'call.grid': 'Participants',
  'call.screen.error': 'Le partage d’écran n’a pas pu démarrer.',
  'call.device.error': 'Impossible d’utiliser le micro ou la caméra.',
  'call.joined': '{name} a rejoint l’appel',
  'call.left': '{name} a quitté l’appel',

  'left.title': 'Vous avez quitté l’appel',
  'left.title.dropped': 'Vous n’êtes plus dans l’appel',
  'left.body': 'Vous pouvez fermer cette page ou rejoindre l’appel à nouveau.',
  'left.rejoin': 'Rejoindre à nouveau',
  'left.ended': 'L’appel est terminé.',
  'left.duplicate': 'Vous avez rejoint cet appel depuis un autre appareil ou un autre onglet.',
  'left.removed': 'Vous avez été retiré de l’appel.',
  'left.removed.by': '{name} vous a retiré de l’appel.',
  'call.muted.by': 'Micro coupé par {name}.',
  'call.video.stopped.by': 'Caméra et partage d’écran arrêtés par {name}.',
  'left.lost': 'La connexion à l’appel a été perdue.',

  'error.title': 'Impossible de rejoindre l’appel',
  'error.retry': 'Réessayer',
  'error.no.call': 'L’adresse de cette page ne désigne aucun appel. Utilisez le lien publié dans le salon.',
  'error.not.found': 'Cet appel est terminé ou n’existe pas. Demandez un nouveau lien dans le salon (commande !visio).',
  'error.unauthorized': 'Votre identité n’a pas pu être vérifiée auprès du serveur de messagerie. Reconnectez-vous puis réessayez.',
  'error.forbidden': 'Vous n’êtes pas membre du salon de cet appel. Demandez à y être invité, puis réessayez.',
  'error.rate': 'Trop de tentatives de connexion. Patientez une minute avant de réessayer.',
  'error.server': 'Le service de visioconférence a rencontré une erreur. Réessayez dans quelques instants.',
  'error.network': 'Le service de visioconférence ne répond pas. Vérifiez votre connexion et réessayez.',
  'error.media': 'La connexion audio et vidéo n’a pas pu être établie. Votre réseau bloque peut-être la visioconférence.',
  'error.widget': 'Votre messagerie n’a pas confirmé votre identité. Autorisez le widget à vérifier votre identité, puis réessayez.',
  'error.details': 'Détail technique : {detail}',
};

const en = {
  'app.name': 'Salon',
  'app.tagline': 'Video call',
  'app.title': 'Salon – Video call',
  'app.skip': 'Skip to content',
  'loading': 'Loading the call…',

  'login.title': 'Sign in to join the call',
  'login.intro': 'Use your messaging account ({server}). Only members of the room can join this call.',
  'login.user': 'Username',
  'login.user.hint': 'For example: firstname.lastname or @firstname.lastname:{server}',
  'login.password': 'Password',
  'login.submit': 'Sign in',
  'login.busy': 'Signing in…',
  'login.or': 'or',
  'login.sso': 'Sign in with {provider}',
  'login.sso.default': 'single sign-on',
  'login.failed': 'Wrong username or password.',
  'login.rate': 'Too many attempts. Wait a moment before trying again.',
  'login.unreachable': 'The messaging server does not answer. Check your connection and try again.',
  'login.missing': 'Enter your username and password.',
  'login.no.password': 'This server does not accept password sign-in.',

  'prejoin.title': 'Ready to join?',
  'prejoin.intro': 'Check your microphone and camera before you go in.',
  'prejoin.name': 'Your name in the call',
  'prejoin.mic': 'Microphone',
  'prejoin.camera': 'Camera',
  'prejoin.mic.level': 'Microphone level',
  'prejoin.mic.on': 'Microphone on',
  'prejoin.mic.off': 'Microphone off',
  'prejoin.cam.on': 'Camera on',
  'prejoin.cam.off': 'Camera off',
  'prejoin.preview.off': 'Camera is off',
  'prejoin.preview.label': 'Your camera preview',
  'prejoin.join': 'Join the call',
  'prejoin.joining': 'Joining the call…',
  'prejoin.signed.as': 'Signed in as {user}',
  'prejoin.logout': 'Use another account',
  'prejoin.no.device': 'No device found',
  'prejoin.device.default': 'Device {n}',
  'prejoin.denied': 'The browser may not use your microphone or camera. You can allow it in the site settings, or join without them.',
  'prejoin.device.error': 'This device cannot be used: another application may be using it.',
  'prejoin.widget': 'You are joining from your messaging app as {user}.',
  'prejoin.guest': 'You are joining as a guest, invited by {user}. A moderator will let you in.',
  'lobby.title': 'Waiting room',
  'lobby.panel': 'Waiting room',
  'lobby.is.waiting': '{name} is waiting (invited by {user})',
  'lobby.admit': 'Admit',
  'lobby.deny': 'Deny',
  'moderation.mute': 'Mute',
  'moderation.mute.of': 'Mute {name}',
  'moderation.stop.video': 'Stop video',
  'moderation.stop.video.of': 'Stop {name}’s camera and screen share',
  'moderation.remove': 'Remove',
  'moderation.remove.of': 'Remove {name} from the call',
  'moderation.mute.all': 'Mute all',
  'moderation.lock': 'Lock',
  'moderation.refused': 'Refused: {reason}',
  'lobby.waiting': 'A moderator of the call will let you in. Invited by {user}. Keep this page open.',
  'error.guest.link': 'This guest link does not work (or no longer). Ask the person who invited you for a new one.',
  'error.denied': 'A moderator did not let you into the call.',

  'transcription.on': 'Transcription is on: what is said in this call is transcribed and posted in the room.',

  'call.participants': '{n} participants',
  'call.participants.one': '1 participant',
  'call.you': '(you)',
  'call.mic.mute': 'Mute microphone',
  'call.mic.unmute': 'Unmute microphone',
  'call.cam.off': 'Turn camera off',
  'call.cam.on': 'Turn camera on',
  'call.screen.start': 'Share screen',
  'call.screen.stop': 'Stop sharing',
  'call.captions.show': 'Show captions',
  'call.captions.hide': 'Hide captions',
  'call.leave': 'Leave',
  'call.label.mic': 'Mic',
  'call.label.cam': 'Camera',
  'call.label.screen': 'Screen',
  'call.label.captions': 'Captions',
  'call.muted': 'Microphone off',
  'call.speaking': 'speaking',
  'call.screen.of': '{name}’s screen',
  'call.captions': 'Live captions',
  'call.caption.line': '{speaker}: {text}',
  'call.captions.empty': 'Captions will show here as soon as someone speaks.',
  'call.reconnecting': 'Connection lost, reconnecting…',
  'call.audio.blocked': 'The browser blocked the call’s sound.',
  'call.audio.enable': 'Turn sound on',
  'call.controls': 'Call controls',
  'call.grid': 'Participants',
  'call.screen.error': 'Screen sharing could not start.',
  'call.device.error': 'The microphone or camera cannot be used.',
  'call.joined': '{name} joined the call',
  'call.left': '{name} left the call',

  'left.title': 'You left the call',
  'left.title.dropped': 'You are no longer in the call',
  'left.body': 'You can close this page or join the call again.',
  'left.rejoin': 'Join again',
  'left.ended': 'The call has ended.',
  'left.duplicate': 'You joined this call from another device or tab.',
  'left.removed': 'You were removed from the call.',
  'left.removed.by': '{name} removed you from the call.',
  'call.muted.by': 'Muted by {name}.',
  'call.video.stopped.by': 'Camera and screen share stopped by {name}.',
  'left.lost': 'The connection to the call was lost.',

  'error.title': 'Cannot join the call',
  'error.retry': 'Try again',
  'error.no.call': 'This page’s address names no call. Use the link posted in the room.',
  'error.not.found': 'This call has ended or does not exist. Ask for a new link in the room (command !visio).',
  'error.unauthorized': 'Your identity could not be checked with the messaging server. Sign in again and retry.',
  'error.forbidden': 'You are not a member of this call’s room. Ask to be invited, then try again.',
  'error.rate': 'Too many attempts to join. Wait a minute before trying again.',
  'error.server': 'The video call service ran into an error. Try again in a moment.',
  'error.network': 'The video call service does not answer. Check your connection and try again.',
  'error.media': 'The audio and video connection could not be set up. Your network may be blocking video calls.',
  'error.widget': 'Your messaging app did not confirm your identity. Allow the widget to verify your identity, then try again.',
  'error.details': 'Technical detail: {detail}',
};

const dictionaries = { fr, en };

/** Picks the page's language: `?lang=` first, then the browser's, French unless it says otherwise. */
export function pickLanguage(search = location.search, browser = navigator.language) {
  const asked = new URLSearchParams(search).get('lang');
  if (asked && dictionaries[asked]) return asked;
  return (browser || 'fr').toLowerCase().startsWith('fr') ? 'fr' : 'en';
}

let language = 'fr';

export function setLanguage(lang) {
  language = dictionaries[lang] ? lang : 'fr';
  document.documentElement.lang = language;
}

export function currentLanguage() {
  return language;
}

/** The text for `key` in the page's language, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = dictionaries[language][key] ?? fr[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/**
 * Fills the template's words: `data-i18n` sets the text, `data-i18n-aria-label`,
 * `data-i18n-title` and `data-i18n-placeholder` set those attributes.
 */
export function applyStaticText(root, vars = {}) {
  for (const node of root.querySelectorAll('[data-i18n]')) {
    node.textContent = t(node.dataset.i18n, vars);
  }
  for (const attr of ['aria-label', 'title', 'placeholder']) {
    const key = `i18n${attr.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`;
    for (const node of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      node.setAttribute(attr, t(node.dataset[key], vars));
    }
  }
}
