// @ts-check
// The Leave button. With others in the room it asks first (cutting off a conversation by a stray click is
// worse than one more click); alone, it leaves at once. The question is a modal <dialog>: Escape or "Stay"
// keeps the person in, and the focus goes back to the Leave button.
import { byId, find } from './dom.js';
import { setText } from './i18n.js';

/** @typedef {import('./session.js').RoomSession} RoomSession */

export class LeaveButton {
  /**
   * @param {() => RoomSession | null} current the session while in the room
   * @param {() => void} leave
   */
  constructor(current, leave) {
    this.current = current;
    this.leave = leave;
    this.button = byId('btn-leave');
    this.dialog = byId('leave-dialog', HTMLDialogElement);
    this.button.addEventListener('click', () => this.ask());
    // Leaving at once, in the click (the dialog's own close event would only come in a later task).
    find(this.dialog, 'form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.dialog.close();
      if (event.submitter === byId('btn-leave-confirm')) this.leave();
    });
    // Stay, Escape, or the visit ending by itself: back to the Leave button while still in the room.
    this.dialog.addEventListener('close', () => {
      if (this.current()) this.button.focus();
    });
  }

  ask() {
    const session = this.current();
    if (!session) return;
    const others = [...session.peers.keys()].filter((id) => id !== session.selfId).length;
    if (others === 0) {
      this.leave();
      return;
    }
    setText(byId('leave-text'), 'leave_others', { count: others });
    this.dialog.showModal();
    byId('btn-leave-stay').focus();
  }

  // The visit ended some other way (removed, the tab closing): the question no longer stands.
  close() {
    if (this.dialog.open) this.dialog.close();
  }
}
